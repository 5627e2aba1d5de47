"""Train/validation split: whole scenes when there are 3 or more, else blocks with a gap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from spectraseg.data.split import (
    SplitSettings,
    held_out_areas,
    largest_patch_size,
    split_scenes,
)
from spectraseg.errors import ConfigError, DataError


def usable(*shapes: tuple[int, int]) -> list[np.ndarray]:
    return [np.ones(shape, dtype=bool) for shape in shapes]


def test_three_scenes_split_by_scene() -> None:
    split = split_scenes(
        ["a", "b", "c"],
        usable((64, 64), (64, 64), (64, 64)),
        patch_size=32,
        settings=SplitSettings(),
        seed=0,
    )
    validation = {w.scene for w in split.windows}
    assert split.mode == "scenes"
    assert len(validation) == 1
    assert validation.isdisjoint(split.train_scenes)
    assert set(split.train_scenes) | validation == {0, 1, 2}


def test_named_validation_scene_is_used_and_unknown_names_are_errors() -> None:
    scenes = usable((32, 32), (32, 32), (32, 32))
    settings = SplitSettings(validation_scenes=("b",))
    split = split_scenes(["a", "b", "c"], scenes, patch_size=16, settings=settings, seed=0)
    assert {w.scene for w in split.windows} == {1}
    with pytest.raises(ConfigError, match="did you mean 'bb'"):
        split_scenes(
            ["a", "bb", "c"],
            scenes,
            patch_size=16,
            settings=SplitSettings(validation_scenes=("b",)),
            seed=0,
        )


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("shape", [(128, 128), (96, 160), (200, 80)])
def test_blocks_keep_half_a_patch_between_training_and_validation(seed, shape) -> None:
    patch = 32
    split = split_scenes(
        ["only"], usable(shape), patch_size=patch, settings=SplitSettings(), seed=seed
    )
    assert split.mode == "blocks"
    region = split.regions[0]
    assert region is not None
    validation = np.zeros(shape, dtype=bool)
    for window in split.windows:
        validation[window.slices] = True
    # Every training pixel is at least half a patch (Chebyshev distance) from validation.
    distance = ndimage.distance_transform_cdt(~validation, metric="chessboard")
    assert distance[region].min() > patch // 2
    # ...and a whole patch still fits in the training part.
    assert largest_patch_size([shape], SplitSettings()) >= patch


def test_validation_windows_tile_the_area_without_overlap() -> None:
    split = split_scenes(
        ["a", "b", "c"],
        usable((40, 50), (40, 50), (40, 50)),
        patch_size=16,
        settings=SplitSettings(max_windows=1000),
        seed=0,
    )
    covered = np.zeros((40, 50), dtype=int)
    for window in split.windows:
        covered[window.slices] += 1
    assert (covered == 1).all()


def test_validation_windows_are_the_same_for_the_same_seed_and_capped() -> None:
    scenes = usable((256, 256), (256, 256), (256, 256))
    settings = SplitSettings(max_windows=5)
    first = split_scenes(["a", "b", "c"], scenes, patch_size=32, settings=settings, seed=3)
    again = split_scenes(["a", "b", "c"], scenes, patch_size=32, settings=settings, seed=3)
    assert first.windows == again.windows
    assert len(first.windows) == 5


def test_a_split_seed_keeps_the_blocks_whatever_the_training_seed() -> None:
    scenes, names = usable((256, 256), (256, 256), (256, 256)), ["a", "b", "c"]

    def windows(settings: SplitSettings, seed: int) -> list:
        return split_scenes(names, scenes, patch_size=32, settings=settings, seed=seed).windows

    by_training_seed = [windows(SplitSettings(), seed) for seed in range(6)]
    assert any(w != by_training_seed[0] for w in by_training_seed)  # the seed moves the split
    fixed = SplitSettings(seed=7)
    assert all(windows(fixed, seed) == windows(fixed, 0) for seed in range(6))
    assert windows(fixed, 0) == windows(SplitSettings(), 7)
    held = [held_out_areas(names, [(256, 256)] * 3, settings=fixed, seed=s) for s in range(3)]
    assert held[0] == held[1] == held[2]


def test_validation_area_without_usable_pixels_is_a_data_error() -> None:
    scenes = [np.zeros((32, 32), dtype=bool)] * 3
    with pytest.raises(DataError, match="validation area"):
        split_scenes(["a", "b", "c"], scenes, patch_size=16, settings=SplitSettings(), seed=0)
