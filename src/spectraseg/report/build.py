"""`write_report`: sources → report.html and its figures as PNG files in `report_figures/`.

The page embeds every figure, so it is complete on its own; the PNG files are the same figures
for slides and documents. Both are written under temporary names and renamed; figures of an
earlier build that this one no longer draws are removed.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from spectraseg.io.atomic import atomic_path, check_writable, write_text_atomic
from spectraseg.report.figures import (
    confusion_png,
    curves_png,
    error_map,
    overlay,
    png_bytes,
    thresholds_png,
)
from spectraseg.report.page import figure_name, render_page
from spectraseg.report.sources import ReportSource

__all__ = ["REPORT_FILE", "draw_figures", "figures_dir", "write_report"]

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"


def figures_dir(report: Path) -> Path:
    """Where the report's PNG files go: `<stem>_figures/` beside it."""
    return report.parent / f"{report.stem}_figures"


def draw_figures(sources: Sequence[ReportSource]) -> dict[str, bytes]:
    """Every figure of the report, by file name."""
    figures: dict[str, bytes] = {}
    for source in sources:
        label, names, colours = source.label, source.class_names, source.class_colours
        if source.history:
            figures[figure_name("curves", label)] = curves_png(source.history, names, colours)
        for view in source.scenes:
            for kind, mask in (("prediction", view.predicted), ("truth", view.truth)):
                figures[figure_name("overlay", label, view.name, kind)] = png_bytes(
                    overlay(view, mask, colours)
                )
            figures[figure_name("errors", label, view.name)] = png_bytes(error_map(view))
        confusion = (source.scores or {}).get("confusion")
        if confusion:
            figures[figure_name("confusion", label)] = confusion_png(
                confusion["matrix"], confusion["labels"]
            )
        if source.thresholds is not None:
            figures[figure_name("thresholds", label)] = thresholds_png(
                source.thresholds, names, colours
            )
        for path in source.search_figures:
            figures[figure_name("search", label, path.parent.name, path.stem)] = path.read_bytes()
    return figures


def write_report(
    sources: Sequence[ReportSource],
    out: str | os.PathLike[str],
    *,
    title: str | None = None,
    overwrite: bool = True,
) -> Path:
    """Write the report of `sources` to `out` (an .html file) and its PNGs beside it.

    Raises:
        OutputExistsError: `out` exists and `overwrite` is False.
    """
    target = Path(out)
    check_writable(target, overwrite=overwrite)
    figures = draw_figures(sources)
    folder = figures_dir(target)
    folder.mkdir(parents=True, exist_ok=True)
    for name, png in figures.items():
        with atomic_path(folder / name) as temporary:
            temporary.write_bytes(png)
    for stale in folder.glob("*.png"):
        if stale.name not in figures:
            stale.unlink()
    created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    heading = title or "spectraseg report: " + ", ".join(s.label for s in sources)
    write_text_atomic(target, render_page(sources, figures, title=heading, created=created))
    log.info("report: %s (%d figures in %s)", target, len(figures), folder)
    return target
