"""`spectraseg train --init-from CKPT`: a new run starts from a trained one of the same kind.

Matching layers are loaded, a changed class list gets a fresh head, other bands are a one-line
error unless `--adapt-bands`, and another architecture is a one-line error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spectraseg.cli.main import main
from spectraseg.models.registry import build_model
from spectraseg.models.transfer import transfer_weights
from spectraseg.sample import generate_sample
from spectraseg.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

TINY = [
    "--set", "model.unet.depth=3",
    "--set", "model.unet.base_filters=4",
    "--set", "data.patch_size=32",
    "--set", "train.patches_per_epoch=4",
    "--set", "train.batch_size=4",
    "--set", "train.num_workers=0",
    "--set", "train.threads=1",
    "--set", "run.report=false",
    "--epochs", "1",
]  # fmt: skip
UNET = {"depth": 3, "base_filters": 4}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data folder, run folder of a U-Net trained on it)."""
    root = tmp_path_factory.mktemp("init")
    data = generate_sample(root / "data", scenes=3, size=64, seed=3)
    assert main(["-q", "train", "--data", str(data), "--out", str(root / "run"), *TINY]) == 0
    return data, root / "run"


def train(data: Path, out: Path, *extra: str) -> int:
    return main(["-q", "train", "--data", str(data), "--out", str(out), *TINY, *extra])


def test_matching_layers_are_loaded_and_new_classes_get_a_fresh_head(trained) -> None:
    _, run = trained
    card = load_checkpoint(run / "last.pt").card
    source = load_checkpoint(run / "last.pt").weights
    model = build_model("unet", card.in_channels, card.num_classes, UNET)
    same = transfer_weights(
        model, source, source_channels=card.channel_names, channels=card.channel_names,
        same_classes=True,
    )  # fmt: skip
    assert not same.fresh and set(same.weights) == set(model.state_dict())
    other = transfer_weights(
        model, source, source_channels=card.channel_names, channels=card.channel_names,
        same_classes=False,
    )  # fmt: skip
    assert set(other.fresh) == {"head.weight", "head.bias"}


def test_other_bands_keep_the_filters_of_the_bands_both_have(trained) -> None:
    _, run = trained
    checkpoint = load_checkpoint(run / "last.pt")
    old = checkpoint.card.channel_names
    new = ("nir", "red", "thermal")
    model = build_model("unet", len(new), checkpoint.card.num_classes, UNET)
    transfer = transfer_weights(
        model, checkpoint.weights, source_channels=old, channels=new, same_classes=True
    )
    first = transfer.weights["encoder.0.0.weight"]
    original = checkpoint.weights["encoder.0.0.weight"]
    assert torch.equal(first[:, 0], original[:, old.index("nir")])
    assert torch.equal(first[:, 1], original[:, old.index("red")])
    assert torch.allclose(first[:, 2], original.mean(dim=1) * len(old) / 3)
    assert not transfer.fresh


def test_a_new_class_list_trains_from_the_checkpoint(trained, tmp_path) -> None:
    data, run = trained
    out = tmp_path / "finetuned"
    assert train(data, out, "--init-from", str(run), "--set", "data.classes=[water]") == 0
    assert load_checkpoint(out / "best.pt").card.class_names == ("water",)
    assert "fresh head" in (out / "train.log").read_text()


def test_other_bands_are_an_error_unless_adapt_bands(trained, tmp_path, capsys) -> None:
    data, run = trained
    bands = ["--set", "data.bands=[blue, green, red, nir]", "--init-from", str(run)]
    assert train(data, tmp_path / "refused", *bands) == 2
    error = capsys.readouterr().err
    assert "--adapt-bands" in error and "coastal" in error and len(error.splitlines()) == 1
    assert not (tmp_path / "refused" / "best.pt").exists()
    assert train(data, tmp_path / "adapted", *bands, "--adapt-bands") == 0
    card = load_checkpoint(tmp_path / "adapted" / "best.pt").card
    assert card.band_names == ("blue", "green", "red", "nir")


def test_another_architecture_is_a_one_line_error(trained, tmp_path, capsys) -> None:
    data, run = trained
    code = train(data, tmp_path / "x", "--model", "fc-densenet", "--init-from", str(run))
    assert code == 2
    error = capsys.readouterr().err
    assert "a unet checkpoint cannot start a fc-densenet" in error
    assert len(error.strip().splitlines()) == 1
