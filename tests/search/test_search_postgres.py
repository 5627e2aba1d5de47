"""Workers on several machines: two `spectraseg search` commands, each with its own folder as on
its own machine, finish one study in a real PostgreSQL server.

The server is Debian's `postgresql` package (`.ci/run` installs it), started for this module on
loopback in a throwaway folder. `initdb` and `pg_ctl` refuse to run as root, so as root they run
as `nobody`. Without the binaries, the driver (`pip install -e .[postgres]`) or a server that
starts, the test skips and says why.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from spectraseg.search.storage import open_storage

pytestmark = pytest.mark.slow

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def _binary(name: str) -> str | None:
    """A PostgreSQL program on PATH, or in Debian's versioned folder (newest first)."""
    found = shutil.which(name)
    if found is not None:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_unprivileged(folder: Path) -> list[str]:
    """The prefix that runs a command as an unprivileged user (nobody when we are root), after
    giving that user `folder`."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without runuser: initdb refuses root")
    nobody = pwd.getpwnam("nobody")
    os.chown(folder, nobody.pw_uid, nobody.pw_gid)
    return [runuser, "-u", "nobody", "--"]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A database URL of a fresh server on 127.0.0.1, stopped and deleted after the module."""
    pytest.importorskip("psycopg2", reason="the PostgreSQL driver: pip install -e .[postgres]")
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("no initdb/pg_ctl: install Debian's postgresql package to run this test")
    folder = Path(tempfile.mkdtemp(prefix="spectraseg-pg-"))
    data = folder / "data"
    port = _free_port()
    prefix = _as_unprivileged(folder)
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -k {folder}"
    steps = [
        [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8"],
        [pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-o", options, "-w", "start"],
    ]
    try:
        for step in steps:
            done = subprocess.run(
                [*prefix, *step], cwd=folder, capture_output=True, text=True, timeout=120
            )
            if done.returncode != 0:
                reason = (done.stderr or done.stdout).strip().splitlines()
                pytest.skip(f"no PostgreSQL server could be started: {reason[-1:]}")
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            stop = [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run(stop, cwd=folder, capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _command(sample: Path, out: Path, config: Path, space: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "spectraseg", "-q", "search", "--data", str(sample),
            "--out", str(out), "--config", str(config), "--space", str(space),
            "--storage", url, "--study", "shared", "--total-trials", "4"]  # fmt: skip


def _wait_for_study(url: str, name: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        storage = open_storage(Path("."), url)
        if any(s.study_name == name for s in storage.get_all_studies()):
            return
        time.sleep(0.2)
    raise AssertionError(f"study {name!r} was not created within {timeout_s} s")


def test_two_machines_finish_one_study_in_postgresql(
    postgres_url, sample, tiny_config, tiny_space, tmp_path
) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first_out, second_out = tmp_path / "machine-a", tmp_path / "machine-b"
    first = subprocess.Popen(
        _command(sample, first_out, tiny_config, tiny_space, postgres_url), env=env
    )
    try:
        # The second machine joins the study the first created, as a user would start it.
        _wait_for_study(postgres_url, "shared", timeout_s=120)
        second = subprocess.run(
            _command(sample, second_out, tiny_config, tiny_space, postgres_url),
            env=env,
            timeout=600,
        )
        assert first.wait(timeout=600) == 0
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert second.returncode == 0

    study = optuna.load_study(study_name="shared", storage=open_storage(tmp_path, postgres_url))
    finished = [t for t in study.trials if t.state in FINISHED]
    assert len(finished) == 4, [(t.number, t.state.name) for t in study.trials]
    assert len({t.number for t in study.trials}) == len(study.trials)
    runs = {Path(t.user_attrs["run"]).parent.parent.name for t in finished}
    assert runs == {"machine-a", "machine-b"}, "both machines ran trials of the study"
    assert (first_out / "best.yaml").is_file() and (second_out / "best.yaml").is_file()
