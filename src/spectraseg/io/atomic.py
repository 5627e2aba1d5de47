"""Write every output under a temporary name and rename it at the end.

An interrupted run must never leave a file that looks complete: readers only ever see either
the previous file or the whole new one, because `os.replace` is atomic on one file system.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from spectraseg.errors import OutputExistsError, RasterError

log = logging.getLogger(__name__)


def check_writable(path: Path, *, overwrite: bool) -> None:
    """Refuse an existing output unless `overwrite`, and an output folder we cannot write to."""
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: already exists. Pass --overwrite to replace it.")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise RasterError(f"{parent}: folder is not writable. Choose another output folder.")


def check_free_space(folder: Path, needed_bytes: int, *, what: str) -> None:
    """Refuse a write that cannot fit, before it starts: a full disk found at the end of a long
    run costs the whole run. `needed_bytes` is an estimate (the caller's)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return
    if needed_bytes > free:
        raise RasterError(
            f"{folder}: {what} need about {_size(needed_bytes)} and only {_size(free)} is free; "
            "the disk is too full. Free space or write somewhere else."
        )


def _size(count: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"  # pragma: no cover - the loop returns


def temporary_sibling(path: Path) -> Path:
    """A unique name next to `path`, hidden and marked partial, on the same file system.

    The writer's pid is part of the name so that a later run can tell a killed run's leftover
    (dead pid) from a file another live process is still writing.
    """
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")


_PARTIAL = re.compile(r"^\..+\.(?:(?P<pid>\d+)-)?[0-9a-f]{8}\.partial$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(folder: Path, *, name: str | None = None) -> list[Path]:
    """Delete the `.partial` files (or folders) of dead writers in `folder`; returns them.

    With `name`, only those of that output (what a writer of one file may clean up without
    holding the folder's lock). Leftovers without a pid (older versions) count as dead.
    """
    removed: list[Path] = []
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            match = _PARTIAL.match(entry.name)
            if match is None or (name is not None and not entry.name.startswith(f".{name}.")):
                continue
            pid = match.group("pid")
            if pid is not None and _alive(int(pid)):
                continue
            with contextlib.suppress(OSError):
                if entry.is_dir():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
                removed.append(entry)
    return removed


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
    remove_stale_partials(target.parent, name=target.name)  # a killed run's attempt at it
    temporary = temporary_sibling(target)
    try:
        yield temporary
        os.replace(temporary, target)
    except (OSError, RuntimeError) as error:
        raise _named(error, target, temporary) from error
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _named(error: OSError | RuntimeError, target: Path, temporary: Path) -> Exception:
    """A failed write as an OSError naming the output (not its temporary name), so the command
    line can say which file and why.

    Writers word a full disk their own way: torch's zip writer raises RuntimeError ("unexpected
    pos"), matplotlib an OSError without a file name. A RuntimeError on a disk with next to no
    space left is taken for what it is; any other RuntimeError is a bug and stays one.
    """
    if isinstance(error, OSError):
        about_other_file = error.filename is not None and str(error.filename) != str(temporary)
        if error.errno is None or about_other_file:
            return error
        return OSError(error.errno, error.strerror or str(error), str(target))
    try:
        full = shutil.disk_usage(target.parent).free < 2**20
    except OSError:
        full = False
    if not full:
        return error
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))


def write_text_atomic(path: str | os.PathLike[str], text: str, *, overwrite: bool = True) -> None:
    """Write a small text file (JSON, CSV, YAML) atomically."""
    with atomic_path(path, overwrite=overwrite) as temporary:
        temporary.write_text(text, encoding="utf-8")


def _set_marker(targets: Sequence[Path]) -> Path:
    return targets[0].with_name(f".{targets[0].name}.set-incomplete")


def recover_incomplete_set(targets: Sequence[Path]) -> bool:
    """Remove what a run killed while renaming an output set left under the final names.

    Returns True when an incomplete set was found (and removed, or is partly missing), so the
    caller may write the set again without --overwrite: nothing complete would be replaced.
    """
    marker = _set_marker(targets)
    if marker.exists():
        for name in marker.read_text(encoding="utf-8").split():
            with contextlib.suppress(FileNotFoundError):
                (marker.parent / name).unlink()
        marker.unlink()
        log.warning("%s: removed an incomplete output set left by a killed run", marker.parent)
        return True
    present = [target.exists() for target in targets]
    if any(present) and not all(present):
        log.warning(
            "%s: only part of the outputs exist (an interrupted run); writing them again",
            targets[0].parent,
        )
        return True
    return False


@contextlib.contextmanager
def atomic_set(
    paths: Sequence[str | os.PathLike[str]], *, overwrite: bool = False
) -> Iterator[list[Path]]:
    """Yield temporary paths for outputs that must appear together, then rename them all.

    A failure inside the block leaves the previous files untouched. Between the renames a
    marker names the set; a kill there leaves the marker, and the next run into the same place
    removes the half-renamed set before writing (`recover_incomplete_set`).
    """
    targets = [Path(path) for path in paths]
    if recover_incomplete_set(targets):
        overwrite = True
    for target in targets:
        check_writable(target, overwrite=overwrite)
    for folder in {target.parent for target in targets}:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise RasterError(f"{folder}: cannot create the output folder ({error}).") from None
    temporaries = [temporary_sibling(target) for target in targets]
    try:
        yield temporaries
        marker = _set_marker(targets)
        marker.write_text("\n".join(target.name for target in targets), encoding="utf-8")
        for temporary, target in zip(temporaries, targets, strict=True):
            os.replace(temporary, target)
        marker.unlink()
    except (OSError, RuntimeError) as error:
        failed = next(
            (t for t, p in zip(targets, temporaries, strict=True) if p.name in str(error)),
            targets[0],
        )
        raise _named(error, failed, temporaries[targets.index(failed)]) from error
    finally:
        for temporary in temporaries:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
