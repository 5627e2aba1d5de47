"""Exact resume: a training killed with SIGKILL at a random moment, then `--resume`d in the same
run folder, ends with the weights of a run that was never interrupted (same seed, CPU).

The kill moment is drawn anew on each run of the test (and printed on failure): any moment of
the training must do, from its first written file to its last.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from spectraseg.cli.main import main
from spectraseg.sample import generate_sample
from spectraseg.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

# Dropout and augmentation make every epoch draw from the random generators.
TINY = [
    "--set", "model.unet.depth=3",
    "--set", "model.unet.base_filters=4",
    "--set", "model.unet.dropout=0.2",
    "--set", "data.patch_size=32",
    "--set", "train.patches_per_epoch=16",
    "--set", "train.batch_size=4",
    "--set", "train.num_workers=0",
    "--set", "train.threads=1",
    "--set", "run.report=false",
    "--epochs", "4",
]  # fmt: skip


def command(data: Path, out: Path) -> list[str]:
    spectraseg = [sys.executable, "-m", "spectraseg", "-q", "train"]
    return [*spectraseg, "--data", str(data), "--out", str(out), *TINY]


def start(data: Path, out: Path) -> subprocess.Popen[bytes]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(command(data, out), env=env, stderr=subprocess.PIPE)


def test_sigkill_at_a_random_moment_then_resume_ends_with_the_uninterrupted_weights(
    tmp_path: Path,
) -> None:
    data = generate_sample(tmp_path / "data", scenes=3, size=64, seed=4)

    reference = start(data, tmp_path / "reference")
    while not (tmp_path / "reference" / "config.yaml").exists() and reference.poll() is None:
        time.sleep(0.02)
    began = time.monotonic()
    _, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err.decode()
    training_s = time.monotonic() - began

    moment = random.Random().uniform(0.0, training_s)
    killed = start(data, tmp_path / "run")
    while not (tmp_path / "run" / "config.yaml").exists() and killed.poll() is None:
        time.sleep(0.02)
    time.sleep(moment)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    epochs = (
        (tmp_path / "run" / "history.csv").read_text().count("\n") - 1
        if (tmp_path / "run" / "history.csv").exists()
        else 0
    )
    where = f"killed {moment:.2f} s into a {training_s:.2f} s training, after {epochs} epochs"

    assert (
        main(["-q", "train", "--out", str(tmp_path / "run"), "--data", str(data), "--resume"]) == 0
    )

    expected = load_checkpoint(tmp_path / "reference" / "last.pt")
    resumed = load_checkpoint(tmp_path / "run" / "last.pt")
    assert resumed.epoch == expected.epoch == 4, where
    for name, value in expected.weights.items():
        assert torch.allclose(resumed.weights[name], value, rtol=1e-5, atol=1e-6), (name, where)
    best = load_checkpoint(tmp_path / "run" / "best.pt")
    assert best.epoch == load_checkpoint(tmp_path / "reference" / "best.pt").epoch, where
