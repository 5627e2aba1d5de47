"""With a trained model: training stores its edge margin and TTA scores, and prediction with
`--window auto` gives what `--window patch` gives, within the stored tolerance, at less cost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from spectraseg.cli.main import main
from spectraseg.config import load_config
from spectraseg.predict.edge_margin import EDGE_TOLERANCE
from spectraseg.predict.tta_choice import TTA_COUNTS, choose_tta
from spectraseg.sample import generate_sample
from spectraseg.train.checkpoint import load_checkpoint
from spectraseg.workflow.training import train_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small U-Net trained briefly on the built-in sample, and a held-out scene."""
    root = tmp_path_factory.mktemp("cost")
    data = generate_sample(root / "data", scenes=3, size=256, seed=0)
    held_out = generate_sample(root / "test", scenes=1, size=200, seed=7)
    config = load_config(
        None,
        [
            "train.epochs=5",
            "train.patches_per_epoch=48",
            "train.num_workers=0",
            "model.unet.depth=3",
            "model.unet.base_filters=8",
            "data.patch_size=128",
        ],
    )
    train_model(config, data_dir=data, out_dir=root / "run")
    return root / "run", sorted((held_out / "images").iterdir())[0]


def _predict(run: Path, scene: Path, out: Path, *flags: str) -> tuple[np.ndarray, str]:
    assert main(["predict", str(run), str(scene), "--out", str(out), *flags]) == 0
    with rasterio.open(out / f"{scene.stem}_probs.tif") as dataset:
        return dataset.read(), ""


def test_training_stores_the_edge_margin_and_the_jaccard_of_every_tta_count(trained):
    checkpoint = load_checkpoint(trained[0])
    assert checkpoint.card.edge_margin_px is not None
    assert checkpoint.card.edge_margin_px % 8 == 0  # the depth-3 U-Net's size multiple
    scores = checkpoint.card.tta_jaccard
    assert scores is not None and sorted(scores) == [1, 2, 4, 8]


def test_window_auto_matches_window_patch_within_the_tolerance(trained, tmp_path, capsys):
    run, scene = trained
    patch, _ = _predict(run, scene, tmp_path / "patch", "--window", "patch", "--tta", "2")
    patch_log = capsys.readouterr().err
    auto, _ = _predict(run, scene, tmp_path / "auto", "--window", "auto", "--tta", "2")
    auto_log = capsys.readouterr().err
    assert "measured edge effect" in patch_log and "measured edge effect" in auto_log
    valid = np.isfinite(patch).all(axis=0)
    assert valid.mean() > 0.9 and np.array_equal(valid, np.isfinite(auto).all(axis=0))
    assert np.abs(auto - patch)[:, valid].max() < EDGE_TOLERANCE


def test_tta_auto_uses_the_count_the_card_chooses_and_never_more_than_8(trained, tmp_path, capsys):
    run, scene = trained
    _predict(run, scene, tmp_path / "out", "--window", "patch")
    line = next(x for x in capsys.readouterr().err.splitlines() if "passes per pixel" in x)
    chosen, _ = choose_tta(load_checkpoint(run).card.tta_jaccard)
    assert chosen in TTA_COUNTS and chosen <= 8
    assert f"TTA {chosen} (auto:" in line


def test_the_stored_margin_is_what_the_trained_network_measures_again(trained):
    from spectraseg.predict.load_model import load_model

    checkpoint = load_checkpoint(trained[0])
    model = load_model(trained[0])
    assert model.facts.edge_margin_px == checkpoint.card.edge_margin_px
    assert model.facts.size_multiple == 8 and model.facts.patch_px == 128
