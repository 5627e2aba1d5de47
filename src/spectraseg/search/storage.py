"""Where a search's studies live: one journal file under the output folder, or a database.

Optuna's journal file storage appends every change to `DIR/study.journal` under a file lock,
so any number of worker processes on this machine share it safely however they were started
(SQLite locks under concurrent writers). A database URL (`postgresql://user@host/db`) lets
workers on several machines join one study by running the same command.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from spectraseg.errors import ConfigError

__all__ = ["JOURNAL_FILE", "claim_lock", "open_storage", "study_names"]

JOURNAL_FILE = "study.journal"
LOCK_FILE = ".claim.lock"


def _redacted(url: str) -> str:
    """The URL without its password, fit for an error message or a log line."""
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


def _with_driver(url: str) -> str:
    """`postgresql://` with the PostgreSQL driver that is installed.

    SQLAlchemy 2.1 reads a plain `postgresql://` as psycopg 3; where only psycopg2 (the
    `postgres` extra) is installed, the URL names it, so either driver works with the same URL.

    Example:
        >>> _with_driver("sqlite:///x.db")
        'sqlite:///x.db'
    """
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in ("postgresql", "postgres"):
        return url
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return f"postgresql+psycopg2://{rest}"
    return url


def open_storage(out_dir: Path, url: str | None) -> optuna.storages.BaseStorage:
    """The journal file under `out_dir` (created on first use), or the database at `url`.

    Raises:
        ConfigError: the database cannot be reached or is not one Optuna can use; nothing has
            been written anywhere then.
    """
    if url is None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = str(out_dir / JOURNAL_FILE)
        # The open lock (O_EXCL lock file) works where symlinks do not (some network and
        # Windows file systems); both are safe between processes.
        backend = JournalFileBackend(path, lock_obj=JournalFileOpenLock(path))
        return optuna.storages.JournalStorage(backend)
    try:
        return optuna.storages.RDBStorage(_with_driver(url), engine_kwargs={"pool_pre_ping": True})
    except Exception as error:  # sqlalchemy and driver errors share no base class
        reason = " ".join(str(error).split("\n")[0].split())
        raise ConfigError(
            f"--storage {_redacted(url)}: cannot open the study database ({reason}). Check the "
            "URL, that the server is up and that its driver is installed (psycopg2 for "
            "PostgreSQL); nothing was written."
        ) from None


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """The studies in a storage, oldest first."""
    studies = sorted(storage.get_all_studies(), key=lambda s: s._study_id)
    return [s.study_name for s in studies]


@contextlib.contextmanager
def claim_lock(out_dir: Path) -> Iterator[None]:
    """Serialises "count the trials, then start one" among the local workers of `out_dir`.

    Without it two workers could both see 5 of 6 trials done and start the sixth twice. Workers
    on other machines (database storage) do not share it; `study.py` checks afterwards too.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(out_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)
