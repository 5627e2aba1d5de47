"""Checkpoints: round trip, atomic writes, and one clear error for corrupt or foreign files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from spectraseg.errors import CheckpointError
from spectraseg.models.unet import UNet
from spectraseg.train.checkpoint import (
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from spectraseg.train.predictor import build_predictor

BANDS = ("blue", "green", "red", "nir")
SETTINGS = {"depth": 3, "base_filters": 4}


def make_checkpoint(**changes: object) -> Checkpoint:
    torch.manual_seed(0)
    model = UNet(5, 2, **SETTINGS)
    values = dict(
        model_name="unet",
        model_settings=model.settings.model_dump(mode="json"),
        in_channels=5,
        num_classes=2,
        head="sigmoid",
        band_names=BANDS,
        indices=("ndvi",),
        normalization={
            "method": "standard",
            "band_names": [*BANDS, "ndvi"],
            "mean": [0.1] * 5,
            "std": [0.2] * 5,
            "low": [0.0] * 5,
            "high": [1.0] * 5,
        },
        class_names=("building", "water"),
        class_colours=((255, 0, 0), (0, 0, 255)),
        thresholds=(0.4, 0.6),
        resolution=(2.0, 2.0),
        patch_size=64,
        epoch=3,
        best_score=0.5,
        seed=7,
        versions={"spectraseg": "0.1.0"},
        git_commit=None,
        config={"data": {"indices": {"names": ["ndvi"], "custom": {}}}},
        weights=model.state_dict(),
    )
    values.update(changes)
    return Checkpoint(**values)  # type: ignore[arg-type]


def test_round_trip_keeps_every_field(tmp_path) -> None:
    original = make_checkpoint(training_state={"epoch": 3, "rng": torch.get_rng_state()})
    save_checkpoint(tmp_path / "last.pt", original)
    loaded = load_checkpoint(tmp_path / "last.pt")
    for field in dataclasses.fields(Checkpoint):
        if field.name in ("weights", "training_state"):
            continue
        assert getattr(loaded, field.name) == getattr(original, field.name), field.name
    for name, value in original.weights.items():
        assert torch.equal(loaded.weights[name], value)
    assert loaded.training_state is not None
    assert torch.equal(loaded.training_state["rng"], original.training_state["rng"])


def test_a_run_folder_loads_its_best_checkpoint(tmp_path) -> None:
    save_checkpoint(tmp_path / "best.pt", make_checkpoint(epoch=9))
    assert load_checkpoint(tmp_path).epoch == 9


def test_writing_leaves_no_temporary_file(tmp_path) -> None:
    save_checkpoint(tmp_path / "best.pt", make_checkpoint())
    save_checkpoint(tmp_path / "best.pt", make_checkpoint(epoch=4))
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


def test_truncated_file_is_a_checkpoint_error_naming_it(tmp_path) -> None:
    path = tmp_path / "best.pt"
    save_checkpoint(path, make_checkpoint())
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"best\.pt"):
        load_checkpoint(path)


def test_file_that_is_not_a_checkpoint_is_rejected(tmp_path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="not a spectraseg checkpoint"):
        load_checkpoint(path)
    path.write_text("hello")
    with pytest.raises(CheckpointError, match=r"other\.pt"):
        load_checkpoint(path)


def test_pickled_objects_are_refused_by_weights_only_loading(tmp_path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": "spectraseg-checkpoint", "payload": np.dtype("float32")}, path)
    with pytest.raises(CheckpointError, match=r"evil\.pt"):
        load_checkpoint(path)


def test_newer_format_and_missing_fields_are_incompatible(tmp_path) -> None:
    path = tmp_path / "best.pt"
    save_checkpoint(path, make_checkpoint())
    document = torch.load(path, weights_only=True)
    torch.save({**document, "format_version": 99}, path)
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(path)
    del document["class_names"]
    torch.save(document, path)
    with pytest.raises(CheckpointError, match="lacks 'class_names'"):
        load_checkpoint(path)


def test_inconsistent_class_lists_are_rejected(tmp_path) -> None:
    path = tmp_path / "best.pt"
    save_checkpoint(path, make_checkpoint(thresholds=(0.5,)))
    with pytest.raises(CheckpointError, match="thresholds"):
        load_checkpoint(path)


def test_missing_file_names_the_path(tmp_path) -> None:
    with pytest.raises(CheckpointError, match=r"nothing\.pt"):
        load_checkpoint(tmp_path / "nothing.pt")


def test_predictor_takes_raw_bands_with_nan_and_returns_probabilities(tmp_path) -> None:
    save_checkpoint(tmp_path / "best.pt", make_checkpoint())
    predictor = build_predictor(load_checkpoint(tmp_path), torch.device("cpu"))
    batch = torch.rand(2, 4, 20, 28)  # not a multiple of 8: padded inside
    batch[0, :, 0, 0] = torch.nan
    probs = predictor(batch)
    assert probs.shape == (2, 2, 20, 28)
    assert torch.isfinite(probs).all()
    assert ((probs >= 0) & (probs <= 1)).all()


def test_predictor_rejects_weights_that_do_not_fit_the_settings(tmp_path) -> None:
    wrong = make_checkpoint(model_settings={"depth": 3, "base_filters": 8})
    with pytest.raises(CheckpointError, match="do not fit"):
        build_predictor(wrong, torch.device("cpu"))
