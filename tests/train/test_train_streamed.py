"""Training on streamed scenes: chosen by data.streaming, logged, and the same run as in memory."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from spectraseg.config import load_config
from spectraseg.train.checkpoint import load_checkpoint
from spectraseg.workflow.training import train_model

from .conftest import TINY_UNET

TINY = [*TINY_UNET, "train.patches_per_epoch=8", "train.epochs=1"]


def train(sample: Path, out: Path, *extra: str) -> None:
    train_model(load_config(None, [*TINY, *extra]), data_dir=sample, out_dir=out)


def test_a_streamed_run_trains_the_in_memory_run(sample, tmp_path, caplog) -> None:
    train(sample, tmp_path / "memory", "data.streaming=never", "train.num_workers=0")
    with caplog.at_level(logging.INFO, logger="spectraseg"):
        train(sample, tmp_path / "streamed", "data.streaming=always", "train.num_workers=1")
    memory = load_checkpoint(tmp_path / "memory" / "last.pt")
    streamed = load_checkpoint(tmp_path / "streamed" / "last.pt")
    a, b = memory.card.normalization.stats, streamed.card.normalization.stats
    assert a["band_names"] == b["band_names"]
    assert a["mean"] == pytest.approx(b["mean"], rel=1e-6)
    assert a["std"] == pytest.approx(b["std"], rel=1e-6)
    for name, value in memory.weights.items():
        torch.testing.assert_close(streamed.weights[name], value, atol=1e-4, rtol=1e-4)
    assert "training data streamed: data.streaming is always" in caplog.text
    assert (tmp_path / "streamed" / "split.json").read_text() == (
        (tmp_path / "memory" / "split.json").read_text()
    )


def test_auto_keeps_a_small_set_in_memory_and_says_why(sample, tmp_path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="spectraseg"):
        train(sample, tmp_path, "train.num_workers=0")
    assert "training data in memory: 0.0 GB of arrays fit the" in caplog.text


def test_auto_streams_a_set_over_the_memory_budget(sample, tmp_path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="spectraseg"):
        train(sample, tmp_path, "train.num_workers=0", "data.memory_budget_gb=0.000001")
    assert "training data streamed: 0.0 GB of arrays would not fit the 0.0 GB budget" in (
        caplog.text
    )
