"""Patch datasets: lazy seeded patches, patch-size clamping with a warning, validation windows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from affine import Affine

from spectraseg.data.augment import AugmentSettings
from spectraseg.data.dataset import clamp_patch_size, prepare_training_data
from spectraseg.data.sampling import SamplingSettings
from spectraseg.data.scene import Scene
from spectraseg.data.settings import DataSettings
from spectraseg.errors import ConfigError, DataError, SpectrasegWarning
from spectraseg.grid import Grid


def scene(name: str, size: int = 48, seed: int = 0) -> Scene:
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(4, size, size)).astype(np.float32)
    mask = np.zeros((2, size, size), dtype=bool)
    mask[0, 4:20, 4:20] = True
    mask[1, 30:34, 30:34] = True
    return Scene(
        name=name,
        image=image,
        valid=np.ones((size, size), dtype=bool),
        band_names=("blue", "green", "red", "nir"),
        grid=Grid(None, Affine.identity(), size, size),
        mask=mask,
        ignore=np.zeros((size, size), dtype=bool),
        class_names=("field", "pool"),
    )


def prepare(scenes: list[Scene], patch_size: int = 16, patches: int = 6):
    return prepare_training_data(
        scenes,
        data=DataSettings(patch_size=patch_size),
        sampling=SamplingSettings(),
        augment_settings=AugmentSettings(),
        size_multiple=8,
        patches_per_epoch=patches,
        seed=0,
    )


def test_patches_have_the_configured_shapes_and_types() -> None:
    data = prepare([scene("a"), scene("b", seed=1), scene("c", seed=2)])
    image, mask, ignore = data.train[0]
    assert image.shape == (4, 16, 16) and image.dtype.is_floating_point
    assert mask.shape == (2, 16, 16) and mask.dtype == torch.bool
    assert ignore.shape == (16, 16)
    assert len(data.train) == 6


def test_patches_are_a_function_of_seed_epoch_and_index() -> None:
    data = prepare([scene("a"), scene("b", seed=1), scene("c", seed=2)])
    first = torch.stack([data.train[i][0] for i in range(3)])
    assert torch.equal(first, torch.stack([data.train[i][0] for i in range(3)]))
    data.train.set_epoch(1)
    assert not torch.equal(first, torch.stack([data.train[i][0] for i in range(3)]))


def test_an_epoch_iterates_to_its_end_and_stops() -> None:
    data = prepare([scene("a"), scene("b", seed=1), scene("c", seed=2)])
    assert len(list(data.train)) == 6
    with pytest.raises(IndexError, match="patch 6 of an epoch of 6"):
        data.train[6]


def test_normalization_uses_training_scenes_only() -> None:
    scenes = [scene("a"), scene("b", seed=1), scene("c", seed=2)]
    data = prepare(scenes)
    train_pixels = np.concatenate([scenes[i].image[0].ravel() for i in data.split.train_scenes])
    assert data.stats.mean[0] == pytest.approx(float(train_pixels.mean()), abs=1e-5)


def test_patch_larger_than_the_scenes_is_clamped_with_a_warning() -> None:
    with pytest.warns(SpectrasegWarning, match="using 48 px"):
        data = prepare([scene("a"), scene("b", seed=1), scene("c", seed=2)], patch_size=64)
    assert data.patch_size == 48
    assert data.train[0][0].shape[-1] == 48


def test_patch_size_must_suit_the_model_depth() -> None:
    with pytest.raises(ConfigError, match="use 96 or 112"):
        clamp_patch_size(100, 500, 16)


def test_scene_too_small_for_the_model_is_a_data_error() -> None:
    with pytest.raises(DataError, match="shallower model"):
        clamp_patch_size(64, 12, 16)


def test_scenes_without_any_known_class_are_a_data_error() -> None:
    empty = [scene("a"), scene("b"), scene("c")]
    empty = [s.with_labels(np.zeros_like(s.mask), s.ignore, s.class_names) for s in empty]
    with pytest.raises(DataError, match="no scene has a labelled pixel"):
        prepare(empty)


def test_validation_windows_cover_the_held_out_scene() -> None:
    data = prepare([scene("a"), scene("b", seed=1), scene("c", seed=2)])
    assert sum(int(image[0].size) for image, _, _ in data.validation) == 48 * 48
