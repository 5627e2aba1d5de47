"""`train.weight_average`: validation and checkpoints hold a moving average of the weights,
and a resumed run continues both the training weights and their average."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from spectraseg.config import load_config
from spectraseg.train.checkpoint import load_checkpoint
from spectraseg.train.weight_average import WeightAverage, average_decay
from spectraseg.workflow.training import train_model

from .conftest import TINY_UNET

TINY = [*TINY_UNET, "train.patches_per_epoch=8", "train.weight_average=0.9"]


def train(sample: Path, out: Path, *extra: str, resume: bool = False):
    config = load_config(None, [*TINY, *extra])
    return train_model(config, data_dir=sample, out_dir=out, resume=resume)


def test_the_decay_ramps_up_so_the_first_weights_do_not_linger() -> None:
    assert average_decay(0.99, 1) == pytest.approx(2 / 11)
    assert average_decay(0.99, 10_000) == 0.99


def test_an_update_moves_float_weights_part_way_and_copies_counts() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    average = WeightAverage(model, decay=0.5)
    before = average.module[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model[1].num_batches_tracked.fill_(7)
    average.update(model, updates=100)  # past the ramp: decay 0.5
    assert torch.allclose(average.module[0].weight, before + 0.5)
    assert int(average.module[1].num_batches_tracked) == 7
    assert not average.module[0].weight.requires_grad


def test_checkpoints_hold_the_average_and_last_keeps_the_training_weights(sample, tmp_path) -> None:
    train(sample, tmp_path, "train.epochs=2")
    last = load_checkpoint(tmp_path / "last.pt")
    assert last.training_state is not None
    live = last.training_state["live_weights"]
    assert live.keys() == last.weights.keys()
    name = next(key for key, value in live.items() if value.is_floating_point())
    assert not torch.equal(live[name], last.weights[name])  # the average lags the training


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(sample, tmp_path) -> None:
    constant = "train.schedule.name=constant"  # the rate must not depend on `epochs`
    train(sample, tmp_path / "whole", "train.epochs=2", constant)
    train(sample, tmp_path / "halves", "train.epochs=1", constant)
    train(sample, tmp_path / "halves", "train.epochs=2", constant, resume=True)
    whole = load_checkpoint(tmp_path / "whole" / "last.pt")
    halves = load_checkpoint(tmp_path / "halves" / "last.pt")
    assert whole.training_state is not None and halves.training_state is not None
    for name, value in whole.weights.items():
        assert torch.allclose(value, halves.weights[name]), name
        live = whole.training_state["live_weights"][name]
        assert torch.allclose(live, halves.training_state["live_weights"][name]), name
