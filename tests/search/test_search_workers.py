"""Several workers on one study: exact trial counts, and a killed worker's trial retried."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from spectraseg.cli.main import main
from spectraseg.search.storage import open_storage
from spectraseg.search.workers import split_threads

pytestmark = pytest.mark.slow

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def study(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="search", storage=open_storage(out, None))


def test_threads_are_split_between_workers() -> None:
    assert split_threads(2, cores=16) == 8
    assert split_threads(3, cores=2) == 1


def test_two_workers_end_with_exactly_the_total_number_of_trials(
    sample, tiny_config, tiny_space, tmp_path
) -> None:
    out = tmp_path / "search"
    args = ["-q", "search", "--data", str(sample), "--out", str(out), "--config", str(tiny_config)]
    assert main([*args, "--space", str(tiny_space), "--workers", "2", "--total-trials", "6"]) == 0
    trials = study(out).trials
    finished = [t for t in trials if t.state in FINISHED]
    assert len(finished) == 6
    assert len(trials) == 6, "no surplus or lost trial"
    assert len({t.number for t in trials}) == 6
    assert len(list((out / "trials").iterdir())) == 6


def wait_for_running_trial(out: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (out / "trials" / "search-0000" / "train.log").is_file():
            running = study(out).get_trials(states=(optuna.trial.TrialState.RUNNING,))
            if running:
                return
        time.sleep(0.2)
    raise AssertionError("no trial started")


def test_a_killed_worker_leaves_its_trial_failed_and_the_trial_is_retried(
    sample, tiny_config, tiny_space, tmp_path
) -> None:
    out = tmp_path / "search"
    slow = tmp_path / "slow.yaml"  # long enough to be killed mid-trial
    slow.write_text(tiny_config.read_text().replace("epochs: 2", "epochs: 200"))
    command = [sys.executable, "-m", "spectraseg", "-q", "search", "--data", str(sample),
               "--out", str(out), "--config", str(slow), "--space", str(tiny_space),
               "--trials", "1"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen(command, env=env)
    try:
        wait_for_running_trial(out, timeout_s=60)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    killed = study(out).trials[0]
    assert killed.state == optuna.trial.TrialState.RUNNING  # nobody knows yet
    time.sleep(3.5)  # the space's grace period: 3 s without heartbeat

    rerun = ["-q", "search", "--data", str(sample), "--out", str(out), "--trials", "1",
             "--max-minutes-per-trial", "0.02"]  # fmt: skip
    assert main(rerun) == 0
    first, retry = study(out).trials
    assert first.state == optuna.trial.TrialState.FAIL
    assert "no heartbeat" in first.user_attrs["error"]
    assert retry.state in FINISHED
    assert retry.user_attrs["retry_of"] == 0
    assert retry.params == first.params
