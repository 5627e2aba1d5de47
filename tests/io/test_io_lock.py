"""One writer per output folder: the lock appears whole, and a dead holder's lock is taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from spectraseg.errors import LockedError
from spectraseg.io.lock import LOCK_NAME, folder_lock


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_the_lock_file_holds_our_pid_from_the_moment_it_exists(tmp_path: Path) -> None:
    with folder_lock(tmp_path / "out") as lock:
        assert json.loads(lock.read_text()) == {"pid": os.getpid(), "host": socket.gethostname()}
        assert sorted(p.name for p in lock.parent.iterdir()) == [LOCK_NAME]  # no draft left
    assert not (tmp_path / "out").exists()  # a run that wrote nothing leaves nothing


def test_a_live_holder_stops_a_second_writer_naming_it(tmp_path: Path) -> None:
    with (
        folder_lock(tmp_path),
        pytest.raises(LockedError, match=f"pid {os.getpid()}"),
        folder_lock(tmp_path),
    ):
        pass


def test_the_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path: Path) -> None:
    record = {"pid": dead_pid(), "host": socket.gethostname()}
    (tmp_path / LOCK_NAME).write_text(json.dumps(record))
    with folder_lock(tmp_path) as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()


def test_a_lock_from_another_host_is_never_guessed_stale(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(LockedError, match="pid 1 on elsewhere"), folder_lock(tmp_path):
        pass
