"""Sparse labels: a few polygons over a large scene train with the defaults.

The labelled area is the polygons themselves (`data.labels.labelled_area`), so nearly every
pixel is unlabelled: patches are refused only for nodata, drawn around labelled pixels, and the
loss counts labelled pixels only. Labels that never overlap and leave no labelled pixel
classless get the exclusive (softmax) head, unless the config names a head.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
import torch
from affine import Affine

from spectraseg.config import load_config
from spectraseg.data.augment import AugmentSettings
from spectraseg.data.dataset import prepare_training_data
from spectraseg.data.sampling import SamplingSettings
from spectraseg.data.scene import Scene
from spectraseg.data.settings import DataSettings
from spectraseg.grid import Grid
from spectraseg.sample import generate_sample
from spectraseg.train.checkpoint import load_checkpoint
from spectraseg.train.losses import LossSettings, build_loss
from spectraseg.workflow.head_choice import choose_head, label_layout
from spectraseg.workflow.training import train_model

from .conftest import TINY_UNET

SIZE = 96
# (row, col, class) of 6 px squares: a few in every quarter of the scene, about 3% of it.
SQUARES = [
    (4, 4, "water"),
    (4, 80, "tree"),
    (40, 44, "water"),
    (50, 10, "tree"),
    (86, 6, "tree"),
    (86, 84, "water"),
]
TINY = [
    *TINY_UNET,
    "train.patches_per_epoch=8",
    "train.epochs=1",
    "data.labels.file=polygons.geojson",
    "data.labels.labelled_area=polygons.geojson",
    "data.classes=[tree, water]",
]


def polygons_file(folder: Path, squares: list[tuple[int, int, str]]) -> Path:
    """The squares as map polygons with a `class` column, on the sample scene's grid."""
    with rasterio.open(folder / "images" / "scene_000.tif") as raster:
        transform = raster.transform
    features = []
    for row, col, name in squares:
        left, top = transform @ (col, row)
        right, bottom = transform @ (col + 6, row + 6)
        box = shapely.box(min(left, right), min(top, bottom), max(left, right), max(top, bottom))
        features.append(
            {
                "type": "Feature",
                "properties": {"class": name},
                "geometry": json.loads(shapely.to_geojson(box)),
            }
        )
    collection = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
        "features": features,
    }
    path = folder / "polygons.geojson"
    path.write_text(json.dumps(collection))
    return path


@pytest.fixture(scope="module")
def sparse_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 96 px sample scene whose only labels are six small squares of two classes."""
    folder = generate_sample(tmp_path_factory.mktemp("sparse"), scenes=1, size=SIZE, seed=3)
    shutil.rmtree(folder / "labels", ignore_errors=True)
    shutil.rmtree(folder / "masks", ignore_errors=True)
    polygons_file(folder, SQUARES)
    return folder


@pytest.mark.parametrize("streaming", ["never", "always"])
def test_sparse_polygons_train_with_the_defaults_and_an_exclusive_head(
    sparse_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, streaming: str
) -> None:
    config = load_config(None, [*TINY, f"data.streaming={streaming}"])
    with caplog.at_level(logging.INFO, logger="spectraseg"):
        train_model(config, data_dir=sparse_folder, out_dir=tmp_path / "run")
    assert "labels never overlap" in caplog.text and "softmax" in caplog.text
    card = load_checkpoint(tmp_path / "run" / "best.pt").card
    assert card.head == "softmax"
    written = load_config(tmp_path / "run" / "config.yaml")
    assert written.model.head == "softmax"
    assert "cross_entropy" in written.loss.terms and "bce" not in written.loss.terms


@pytest.mark.parametrize("given", ["model.head=sigmoid", "model.unet.head=sigmoid"])
def test_a_configured_head_wins_over_the_choice(
    sparse_folder: Path, tmp_path: Path, given: str
) -> None:
    train_model(load_config(None, [*TINY, given]), data_dir=sparse_folder, out_dir=tmp_path)
    assert load_checkpoint(tmp_path / "best.pt").card.head == "sigmoid"


def test_the_forest_trains_on_the_labelled_pixels_of_sparse_polygons(
    sparse_folder: Path, tmp_path: Path
) -> None:
    config = load_config(None, [*TINY, "model.name=random-forest", "model.random_forest.trees=2"])
    result = train_model(config, data_dir=sparse_folder, out_dir=tmp_path)
    assert result.best_score >= 0.0


def scene_with(mask: np.ndarray, ignore: np.ndarray) -> Scene:
    size = mask.shape[-1]
    image = np.random.default_rng(0).normal(size=(4, size, size)).astype(np.float32)
    return Scene(
        name="a",
        image=image,
        valid=np.ones((size, size), dtype=bool),
        band_names=("blue", "green", "red", "nir"),
        grid=Grid(None, Affine.identity(), size, size),
        mask=mask,
        ignore=ignore,
        class_names=("field", "pool"),
    )


def sparse_scene(size: int = 64) -> Scene:
    """Two 4 px squares, one per class, and nothing else labelled (0.8% of the scene)."""
    mask = np.zeros((2, size, size), dtype=bool)
    mask[0, 6:10, 6:10] = True
    mask[1, 50:54, 40:44] = True
    return scene_with(mask, ignore=~mask.any(axis=0))


def test_patches_of_sparse_labels_are_drawn_around_labelled_pixels() -> None:
    data = prepare_training_data(
        [sparse_scene(), sparse_scene()],
        data=DataSettings(patch_size=16),
        sampling=SamplingSettings(),
        augment_settings=AugmentSettings(),
        size_multiple=8,
        patches_per_epoch=40,
        seed=0,
    )
    for index in range(len(data.train)):
        _, _, ignore = data.train[index]
        labelled = ~ignore
        assert labelled.any()
        assert (~labelled).float().mean() > 0.5  # mostly unlabelled, and still drawn
    assert len(data.validation) > 0
    assert all((~ignore).any() for _, _, ignore in data.validation)


def test_the_loss_gives_unlabelled_pixels_no_gradient() -> None:
    data = prepare_training_data(
        [sparse_scene(), sparse_scene()],
        data=DataSettings(patch_size=16),
        sampling=SamplingSettings(),
        augment_settings=AugmentSettings(),
        size_multiple=8,
        patches_per_epoch=4,
        seed=0,
    )
    patches = [data.train[index] for index in range(len(data.train))]
    _, mask, ignore = (torch.stack(parts) for parts in zip(*patches, strict=True))
    loss_fn = build_loss(LossSettings(), "sigmoid")
    logits = torch.randn(mask.shape, generator=torch.Generator().manual_seed(0))

    def gradient(values: torch.Tensor) -> torch.Tensor:
        values = values.clone().requires_grad_(True)
        loss_fn(values, mask, ignore).backward()
        assert values.grad is not None
        return values.grad

    perturbed = logits + 5.0 * torch.randn(logits.shape) * ignore.unsqueeze(1)
    first, second = gradient(logits), gradient(perturbed)
    assert torch.equal(first, second)
    assert not first[ignore.unsqueeze(1).expand_as(first)].any()


def test_overlapping_or_classless_labels_keep_the_sigmoid_head(
    caplog: pytest.LogCaptureFixture,
) -> None:
    partition = sparse_scene()
    overlapping_mask = partition.mask.copy()
    overlapping_mask[1, 6:8, 6:8] = True
    overlapping = scene_with(overlapping_mask, partition.ignore)
    with_background = scene_with(partition.mask, np.zeros((64, 64), dtype=bool))
    config = load_config(None)
    with caplog.at_level(logging.INFO, logger="spectraseg"):
        assert choose_head(config, [partition]).model.head == "softmax"
        assert choose_head(config, [overlapping]).model.head == "sigmoid"
        assert choose_head(config, [with_background]).model.head == "sigmoid"
    assert "two classes or more" in caplog.text and "(background)" in caplog.text
    assert label_layout([overlapping]).overlapping == 4


def test_a_changed_loss_with_bce_keeps_the_sigmoid_head() -> None:
    config = load_config(None, ["loss.terms={bce: 1.0, dice: 1.0}"])
    assert choose_head(config, [sparse_scene()]).model.head == "sigmoid"


def test_a_configured_softmax_head_takes_the_default_loss_with_cross_entropy() -> None:
    config = load_config(None, ["model.head=softmax"])
    chosen = choose_head(config, [sparse_scene()])
    assert chosen.model.network_head() == "softmax"
    assert set(chosen.loss.terms) == {"cross_entropy", "log_jaccard"}
