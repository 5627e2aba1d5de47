"""A progress bar for long steps: windows predicted, rows vectorized.

The library only shows one when the caller asks (`progress=True`); the CLI asks unless
`--quiet`. The bar goes to stderr so stdout stays for results.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

__all__ = ["progress_bar"]


def progress_bar(
    total: int, description: str, *, unit: str, enabled: bool
) -> contextlib.AbstractContextManager[Callable[[float], None]]:
    """A context giving `advance(count)`; a rich bar with `unit`/s and ETA when enabled."""
    if not enabled:
        return contextlib.nullcontext(lambda _: None)
    return _rich_progress(total, description, unit)


@contextlib.contextmanager
def _rich_progress(total: int, description: str, unit: str) -> Iterator[Callable[[float], None]]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class SpeedColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.2f} {unit}/s" if speed else f"? {unit}/s")

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        SpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda count: bar.advance(task, count)
