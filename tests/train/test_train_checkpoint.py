"""Checkpoints: round trip, atomic writes, and one clear error for corrupt or foreign files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from spectraseg.errors import CheckpointError
from spectraseg.models.card import ModelCard
from spectraseg.models.unet import UNet
from spectraseg.predict.predictor import build_predictor
from spectraseg.train.checkpoint import (
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
)

BANDS = ("blue", "green", "red", "nir")
SETTINGS = {"depth": 3, "base_filters": 4}


NORMALIZATION = {
    "band_names": [*BANDS, "ndvi"],
    "mean": [0.1] * 5,
    "std": [0.2] * 5,
    "low": [0.0] * 5,
    "high": [1.0] * 5,
}


def make_card(**changes: object) -> ModelCard:
    values: dict[str, object] = dict(
        model="unet",
        model_settings=UNet(5, 2, **SETTINGS).settings.model_dump(mode="json"),
        band_names=BANDS,
        resolution=(2.0, 2.0),
        indices={"names": ["ndvi"]},
        normalization={"method": "standard", "stats": NORMALIZATION},
        classes=[
            {"name": "building", "id": 3, "colour": (255, 0, 0)},
            {"name": "water", "id": 7, "colour": (0, 0, 255)},
        ],
        head="sigmoid",
        thresholds=(0.4, 0.6),
        patch_px=64,
        size_multiple=8,
    )
    values.update(changes)
    return ModelCard.model_validate(values)


def make_checkpoint(**changes: object) -> Checkpoint:
    torch.manual_seed(0)
    card_fields = set(ModelCard.model_fields)
    values: dict[str, object] = dict(
        card=make_card(**{k: v for k, v in changes.items() if k in card_fields}),
        epoch=3,
        best_score=0.5,
        seed=7,
        versions={"spectraseg": "0.1.0"},
        git_commit=None,
        config={},
        weights=UNet(5, 2, **SETTINGS).state_dict(),
    )
    values.update({k: v for k, v in changes.items() if k not in card_fields})
    return Checkpoint(**values)  # type: ignore[arg-type]


def format_1_document() -> dict[str, object]:
    """A checkpoint as spectraseg wrote it before the model card (format 1)."""
    torch.manual_seed(0)
    model = UNet(5, 2, **SETTINGS)
    return {
        "format": "spectraseg-checkpoint",
        "format_version": 1,
        "model_name": "unet",
        "model_settings": model.settings.model_dump(mode="json"),
        "in_channels": 5,
        "num_classes": 2,
        "head": "sigmoid",
        "band_names": list(BANDS),
        "indices": ["ndvi"],
        "normalization": {"method": "standard", **NORMALIZATION},
        "class_names": ["building", "water"],
        "class_colours": [[255, 0, 0], [0, 0, 255]],
        "thresholds": [0.4, 0.6],
        "resolution": [2.0, 2.0],
        "patch_size": 64,
        "epoch": 3,
        "best_score": 0.5,
        "seed": 7,
        "versions": {"spectraseg": "0.1.0"},
        "git_commit": None,
        "config": {"data": {"indices": {"names": ["ndvi"], "custom": {}}}},
        "weights": model.state_dict(),
        "edge_margin_px": 16,
        "tta_jaccard": {1: 0.5, 2: 0.5, 4: 0.6, 8: 0.6},
    }


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
    del document["card"]
    torch.save(document, path)
    with pytest.raises(CheckpointError, match="lacks 'card'"):
        load_checkpoint(path)


def test_a_newer_card_format_names_its_version_and_the_fix(tmp_path) -> None:
    path = tmp_path / "best.pt"
    save_checkpoint(path, make_checkpoint())
    document = torch.load(path, weights_only=True)
    document["card"]["format_version"] = 5
    torch.save(document, path)
    with pytest.raises(CheckpointError, match=r"model card format 5 is newer.*upgrade"):
        load_checkpoint(path)


def test_the_card_keeps_class_ids_and_measured_facts(tmp_path) -> None:
    card = make_card(edge_margin_px=8, tta_jaccard={1: 0.5, 8: 0.6})
    save_checkpoint(tmp_path / "best.pt", make_checkpoint(**card.model_dump()))
    loaded = load_checkpoint(tmp_path).card
    assert loaded == card
    assert loaded.class_ids == (3, 7) and loaded.in_channels == 5


def test_a_format_1_checkpoint_loads_as_a_card(tmp_path) -> None:
    path = tmp_path / "old.pt"
    torch.save(format_1_document(), path)
    checkpoint = load_checkpoint(path)
    card = checkpoint.card
    assert card.band_names == BANDS and card.indices.names == ("ndvi",)
    assert card.class_names == ("building", "water") and card.class_ids == (1, 2)
    assert card.normalization.stats["mean"] == [0.1] * 5
    assert card.patch_px == 64 and card.size_multiple == 8 and not card.per_pixel
    assert card.edge_margin_px == 16 and card.tta_jaccard == {1: 0.5, 2: 0.5, 4: 0.6, 8: 0.6}
    probs = build_predictor(checkpoint, torch.device("cpu"))(torch.rand(1, 4, 16, 16))
    assert probs.shape == (1, 2, 16, 16)


def test_an_inconsistent_format_1_checkpoint_is_rejected(tmp_path) -> None:
    path = tmp_path / "old.pt"
    torch.save({**format_1_document(), "in_channels": 9}, path)
    with pytest.raises(CheckpointError, match="in_channels 9"):
        load_checkpoint(path)


def test_inconsistent_class_lists_are_rejected(tmp_path) -> None:
    path = tmp_path / "best.pt"
    save_checkpoint(path, make_checkpoint())
    document = torch.load(path, weights_only=True)
    document["card"]["thresholds"] = [0.5]
    torch.save(document, path)
    with pytest.raises(CheckpointError, match="1 thresholds for 2 classes"):
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
