"""`train_model` hooks a search relies on: a per-epoch callback that may stop, and class subsets."""

from __future__ import annotations

import pytest

from spectraseg.config import load_config
from spectraseg.errors import ConfigError
from spectraseg.train.checkpoint import load_checkpoint
from spectraseg.workflow.training import train_model

from .conftest import TINY_UNET

TINY = [*TINY_UNET, "train.patches_per_epoch=8", "train.epochs=3"]


def test_on_epoch_end_sees_every_validation_and_can_stop_training(sample, tmp_path) -> None:
    seen: list[tuple[int, float]] = []

    def stop_after_two(epoch: int, score: float) -> bool:
        seen.append((epoch, score))
        return epoch == 2

    result = train_model(
        load_config(None, TINY), data_dir=sample, out_dir=tmp_path / "run",
        on_epoch_end=stop_after_two,
    )  # fmt: skip
    assert [epoch for epoch, _ in seen] == [1, 2]
    assert result.stopped == "caller" and result.epochs == 2
    assert result.best_score == max(score for _, score in seen)
    assert len((tmp_path / "run" / "history.csv").read_text().splitlines()) == 3


def test_data_classes_trains_a_model_of_those_classes_only(sample, tmp_path) -> None:
    config = load_config(None, [*TINY, "train.epochs=1", "data.classes=[water]"])
    train_model(config, data_dir=sample, out_dir=tmp_path / "run")
    assert load_checkpoint(tmp_path / "run").card.class_names == ("water",)


def test_an_unknown_class_in_data_classes_gets_a_did_you_mean(sample, tmp_path) -> None:
    config = load_config(None, [*TINY, "data.classes=[watr]"])
    with pytest.raises(ConfigError, match=r"data.classes: .*'water'"):
        train_model(config, data_dir=sample, out_dir=tmp_path / "run")
