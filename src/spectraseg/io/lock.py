"""One writer per output folder: a lock file holding the writer's pid and host.

Two runs writing into one folder would interleave their files (two trainings both writing
`last.pt`, a later `predict` silently replacing an earlier one after both checked for
`--overwrite`). The lock is taken before any output is checked or written, so the second
writer stops at once with the holder's pid and host. A lock left by a killed run (its pid is
dead on this host) is taken over with a warning; a lock from another host is never guessed
stale. Taking a folder's lock also removes the `.partial` leftovers of killed runs there.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from spectraseg.errors import LockedError, RasterError
from spectraseg.io.atomic import remove_stale_partials

LOCK_NAME = ".spectraseg.lock"

log = logging.getLogger(__name__)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (signal 0 probes without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(lock: Path) -> dict[str, object]:
    try:
        document = json.loads(lock.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _create(lock: Path) -> bool:
    """Create the lock file, whole, exclusively; False when it already exists.

    The record is written to a file of our own and hard-linked to the lock's name, so the lock
    appears with its pid in it: a run killed between creating the file and writing it would
    leave an empty lock that no later run could judge stale. Where hard links are not
    supported, the file is created exclusively and written in place.
    """
    record = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
    draft = lock.with_name(f"{lock.name}.{os.getpid()}.tmp")
    try:
        draft.write_text(record, encoding="utf-8")
        try:
            os.link(draft, lock)
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            return _create_in_place(lock, record)
        return True
    except OSError as error:  # a full disk or no permission: leave no lock behind
        if error.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
            raise
        raise OSError(error.errno, error.strerror, str(lock)) from None
    finally:
        with contextlib.suppress(OSError):
            draft.unlink()


def _create_in_place(lock: Path, record: str) -> bool:
    try:
        descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(record)
    except OSError as error:
        lock.unlink()
        raise OSError(error.errno, error.strerror, str(lock)) from None
    return True


def _stale(holder: dict[str, object]) -> bool:
    pid = holder.get("pid")
    if not isinstance(pid, int) or holder.get("host") != socket.gethostname():
        return False
    return pid != os.getpid() and not pid_alive(pid)


def acquire(folder: Path) -> Path:
    """Take `folder`'s lock (creating the folder); returns the lock file.

    Raises:
        LockedError: a live process (or one on another host) holds the lock.
        RasterError: the folder cannot be created (a file is in the way, no permission).
    """
    if folder.exists() and not folder.is_dir():
        raise RasterError(f"{folder}: exists and is not a folder. Choose another output folder.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RasterError(
            f"{folder}: cannot create the output folder ({error.strerror})."
        ) from None
    lock = folder / LOCK_NAME
    for _ in range(3):  # a racing takeover may remove the file between our two looks
        try:
            if _create(lock):
                remove_stale_partials(folder)
                return lock
        except OSError as error:
            if error.errno in (errno.EACCES, errno.EROFS, errno.EPERM):
                raise RasterError(
                    f"{folder}: folder is not writable ({error.strerror}). "
                    "Choose another output folder."
                ) from None
            raise
        holder = _holder(lock)
        if not _stale(holder):
            who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
            raise LockedError(
                f"{folder}: another spectraseg run ({who}) is writing here (lock {lock}). "
                "Wait for it, or choose another output folder."
            )
        log.warning(
            "%s: taking over the lock of a run that is gone (pid %s)", folder, holder.get("pid")
        )
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
    raise LockedError(f"{folder}: the lock {lock} keeps changing hands. Try again.")


def release(lock: Path) -> None:
    """Remove our lock file (only if it is still ours)."""
    if _holder(lock).get("pid") == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold `folder`'s lock for the block: the block is the only spectraseg writer there.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "out"
        >>> with folder_lock(out) as lock:
        ...     lock.name
        '.spectraseg.lock'
        >>> (out / ".spectraseg.lock").exists()
        False
    """
    created = not Path(folder).exists()
    try:
        lock = acquire(Path(folder))
    except BaseException:  # no lock (a full disk, a live holder): no empty folder either
        if created:
            with contextlib.suppress(OSError):
                Path(folder).rmdir()
        raise
    try:
        yield lock
    finally:
        release(lock)
        if created:  # a run that wrote nothing leaves no empty folder behind
            with contextlib.suppress(OSError):
                lock.parent.rmdir()
