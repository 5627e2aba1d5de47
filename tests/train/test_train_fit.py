"""Training runs: deterministic with a seed, bounded by epochs and time, resumable."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from spectraseg.config import load_config
from spectraseg.predict.predictor import build_predictor
from spectraseg.train.checkpoint import load_checkpoint
from spectraseg.workflow.training import train_model

from .conftest import TINY_UNET

TINY = [*TINY_UNET, "train.patches_per_epoch=8", "train.epochs=1"]


def train(sample: Path, out: Path, *extra: str, resume: bool = False):
    config = load_config(None, [*TINY, *extra])
    return train_model(config, data_dir=sample, out_dir=out, resume=resume)


def test_same_seed_gives_the_same_weights_whatever_the_workers(sample, tmp_path) -> None:
    train(sample, tmp_path / "a", "train.epochs=2")
    train(sample, tmp_path / "b", "train.epochs=2", "train.num_workers=1")
    first, second = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert first.epoch == second.epoch
    for name, value in first.weights.items():
        assert torch.equal(value, second.weights[name]), name
    assert (tmp_path / "a" / "history.csv").read_text().splitlines()[1].split(",")[4] == (
        (tmp_path / "b" / "history.csv").read_text().splitlines()[1].split(",")[4]
    )


def test_epochs_bound_the_run_and_each_epoch_is_a_history_row(sample, tmp_path) -> None:
    result = train(sample, tmp_path, "train.epochs=2", "train.early_stopping_patience=null")
    assert result.epochs == 2 and result.stopped == "epochs"
    assert len((tmp_path / "history.csv").read_text().splitlines()) == 1 + 2


def test_time_budget_stops_after_a_step_validates_and_writes_everything(sample, tmp_path) -> None:
    result = train(sample, tmp_path, "train.epochs=50", "train.max_minutes=0.0001")
    assert result.stopped == "time"
    assert result.epochs == 1
    assert len(result.history) == 1  # validated once
    for name in ("config.yaml", "best.pt", "last.pt", "history.csv", "curves.png", "train.log"):
        assert (tmp_path / name).is_file(), name


def test_cosine_decay_over_budget_reaches_the_floor_when_the_minutes_end(sample, tmp_path) -> None:
    budget = ["train.epochs=1000", "train.max_minutes=0.0001", "train.learning_rate=0.01"]
    result = train(sample, tmp_path / "budget", *budget, "train.schedule.decay_over_budget=true")
    assert result.history[-1]["learning_rate"] == pytest.approx(0.01 * 0.01)  # min_ratio
    by_epochs = train(sample, tmp_path / "epochs", *budget)  # the default: over the epochs
    assert by_epochs.history[-1]["learning_rate"] == pytest.approx(0.01, rel=1e-4)


def test_run_folder_holds_exactly_the_run_files(sample, tmp_path) -> None:
    train(sample, tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    run_files = ["config.yaml", "split.json", "best.pt", "last.pt", "history.csv", "curves.png"]
    if importlib.util.find_spec("tensorboard") is not None:
        run_files.append("tensorboard")  # the event log, a folder
    assert names == sorted([*run_files, "train.log"])
    assert [n for n in names if "best" in n or "last" in n] == ["best.pt", "last.pt"]
    best = load_checkpoint(tmp_path / "best.pt")
    assert best.training_state is None
    assert load_checkpoint(tmp_path / "last.pt").training_state is not None
    assert best.card.class_names == ("building", "road", "tree", "crop", "water", "pool")
    assert len(best.card.band_names) == best.card.in_channels == 8
    assert best.card.normalization.method == "standard"
    assert all(0 < t < 1 for t in best.card.thresholds)


def test_resume_continues_from_last_checkpoint(sample, tmp_path) -> None:
    train(sample, tmp_path)
    result = train(sample, tmp_path, "train.epochs=2", resume=True)
    assert result.epochs == 2
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert load_checkpoint(tmp_path / "last.pt").epoch == 2


def test_resume_with_no_epoch_left_validates_without_a_new_row(sample, tmp_path) -> None:
    train(sample, tmp_path)
    result = train(sample, tmp_path, resume=True)
    assert result.epochs == 1
    assert len(result.history) == 1


def test_indices_are_recorded_after_the_bands(sample, tmp_path) -> None:
    train(sample, tmp_path, "data.indices=[ndwi, savi]")
    best = load_checkpoint(tmp_path)
    assert best.card.indices.names == ("ndwi", "savi")
    assert best.card.in_channels == len(best.card.band_names) + 2


@pytest.mark.parametrize(
    "model, settings",
    [
        ("random-forest", ["model.random_forest.trees=4", "model.random_forest.max_pixels=2000"]),
        ("index-threshold", ["model.index_threshold.max_pixels=2000"]),
    ],
)
def test_baselines_fill_the_same_run_folder_and_predict(sample, tmp_path, model, settings) -> None:
    result = train(sample, tmp_path, f"model.name={model}", "data.indices=[ndwi]", *settings)
    best = load_checkpoint(tmp_path)
    assert best.card.model == model
    assert best.card.indices.names == ("ndwi",)
    assert 0 <= result.best_score <= 1
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "history.csv").is_file()
    predictor = build_predictor(best, torch.device("cpu"))
    raw = torch.rand(2, len(best.card.band_names), 12, 10)
    raw[1, :, 0, 0] = torch.nan
    probs = predictor(raw)
    assert probs.shape == (2, best.card.num_classes, 12, 10)
    assert ((probs >= 0) & (probs <= 1)).all()


def test_tuned_thresholds_never_score_below_one_half_on_validation(sample, tmp_path) -> None:
    """The sweep includes 0.5, so the stored thresholds can only match or beat it."""
    import csv

    train(sample, tmp_path / "run", "train.epochs=2")
    with (tmp_path / "run" / "history.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    for row in rows:
        assert float(row["val_jaccard_tuned"]) >= float(row["val_jaccard"]) - 1e-9
    thresholds = load_checkpoint(tmp_path / "run").card.thresholds
    assert all(0.0 < t < 1.0 for t in thresholds)
