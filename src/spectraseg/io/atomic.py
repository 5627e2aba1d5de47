"""Write every output under a temporary name and rename it at the end.

An interrupted run must never leave a file that looks complete: readers only ever see either
the previous file or the whole new one, because `os.replace` is atomic on one file system.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from spectraseg.errors import OutputExistsError, RasterError


def check_writable(path: Path, *, overwrite: bool) -> None:
    """Refuse an existing output unless `overwrite`, and an output folder we cannot write to."""
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists. Pass --overwrite to replace it.")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise RasterError(f"{parent}: folder is not writable. Choose another output folder.")


def temporary_sibling(path: Path) -> Path:
    """A unique name next to `path`, hidden and marked partial, on the same file system."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write to; rename it onto `path` only if the block succeeds.

    Example:
        >>> import tempfile, pathlib
        >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text()
        'done'
    """
    target = Path(path)
    check_writable(target, overwrite=overwrite)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RasterError(f"{target.parent}: cannot create the output folder ({error}).") from None
    temporary = temporary_sibling(target)
    try:
        yield temporary
        os.replace(temporary, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def write_text_atomic(path: str | os.PathLike[str], text: str, *, overwrite: bool = True) -> None:
    """Write a small text file (JSON, CSV, YAML) atomically."""
    with atomic_path(path, overwrite=overwrite) as temporary:
        temporary.write_text(text, encoding="utf-8")
