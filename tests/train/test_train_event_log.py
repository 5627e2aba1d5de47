"""TensorBoard's event log: every epoch's scalars in RUN/tensorboard/ when tensorboard is
installed, each epoch once across a resume; nothing and one log line without it."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from spectraseg.config import load_config
from spectraseg.train.event_log import open_event_log
from spectraseg.workflow.training import train_model

from .conftest import TINY_UNET

TINY = [*TINY_UNET, "train.patches_per_epoch=4", "train.early_stopping_patience=null"]


def read_scalars(folder: Path) -> dict[str, list[int]]:
    """Each scalar tag of the event log with the steps (epochs) it has, as TensorBoard reads
    them (purged events left out)."""
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator",
        reason="tensorboard is not installed (the optional extra spectraseg[tensorboard])",
    ).EventAccumulator(str(folder))
    accumulator.Reload()
    return {
        tag: [event.step for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
    }


def test_each_epoch_logs_losses_jaccard_per_class_and_the_learning_rate(sample, tmp_path) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard is not installed")
    train_model(load_config(None, [*TINY, "train.epochs=2"]), data_dir=sample, out_dir=tmp_path)
    scalars = read_scalars(tmp_path / "tensorboard")
    expected = {"loss/train", "loss/validation", "jaccard/mean", "jaccard/mean_tuned"}
    expected |= {"learning_rate", "jaccard/building", "jaccard/water"}
    assert expected <= set(scalars)
    assert scalars["loss/train"] == [1, 2]


def test_a_resumed_run_appends_and_shows_each_epoch_once(sample, tmp_path) -> None:
    pytest.importorskip("tensorboard", reason="tensorboard is not installed")
    train_model(load_config(None, [*TINY, "train.epochs=1"]), data_dir=sample, out_dir=tmp_path)
    # A run killed after logging epoch 2 but before its last.pt: epoch 2 is trained again.
    events = open_event_log(tmp_path / "tensorboard", first_epoch=2)
    events.add_epoch({"epoch": 2, "train_loss": 99.0}, ())
    events.close()
    config = load_config(None, [*TINY, "train.epochs=3"])
    train_model(config, data_dir=sample, out_dir=tmp_path, resume=True)
    scalars = read_scalars(tmp_path / "tensorboard")
    assert scalars["loss/train"] == [1, 2, 3]
    assert scalars["jaccard/mean"] == [1, 2, 3]


def test_without_tensorboard_nothing_is_written_and_one_line_says_why(
    tmp_path, monkeypatch, caplog
) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # what an uninstalled package looks like
    caplog.set_level(logging.DEBUG, logger="spectraseg")
    events = open_event_log(tmp_path / "tensorboard")
    events.add_epoch({"epoch": 1, "train_loss": 0.5}, ())
    events.close()
    assert not events.writing
    assert not (tmp_path / "tensorboard").exists()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "tensorboard package is not installed" in messages[0]
