"""Per-class clean-up: each step does its one job, sizes convert from m², and all are local."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from pydantic import ValidationError

from spectraseg.errors import ConfigError
from spectraseg.grid import Grid
from spectraseg.postprocess.morphology import (
    MorphologySettings,
    PixelMorphology,
    clean_mask,
    close_mask,
    fill_small_holes,
    open_mask,
    remove_small_objects,
    smooth_mask,
)


def square(size: int = 12, lo: int = 3, hi: int = 9) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[lo:hi, lo:hi] = True
    return mask


def test_opening_removes_specks_and_keeps_the_square() -> None:
    mask = square()
    mask[0, 11] = True
    opened = open_mask(mask, 1)
    assert not opened[0, 11]
    assert opened[4:8, 4:8].all()


def test_opening_does_not_eat_objects_at_the_image_border() -> None:
    full = np.ones((6, 6), bool)
    assert open_mask(full, 2).all()


def test_closing_bridges_a_one_pixel_gap() -> None:
    mask = square()
    mask[:, 6] = False
    closed = close_mask(mask, 1)
    assert closed[4:8, 6].all() and not closed[:3, 6].any()


def test_smoothing_rounds_corners_and_keeps_the_body() -> None:
    smoothed = smooth_mask(square(20, 4, 16), 2.0)
    assert not smoothed[4, 4]  # the corner goes
    assert smoothed[10, 4] and smoothed[4, 10]  # edges stay


def test_only_holes_below_the_limit_are_filled() -> None:
    mask = square(14, 1, 13)
    mask[3, 3] = False  # a 1-pixel hole
    mask[6:10, 6:10] = False  # a 16-pixel hole
    filled = fill_small_holes(mask, 5)
    assert filled[3, 3] and not filled[6:10, 6:10].any()


def test_background_reaching_the_border_is_not_a_hole() -> None:
    mask = np.ones((5, 5), bool)
    mask[2, 0] = False
    assert not fill_small_holes(mask, 100)[2, 0]


def test_a_diagonal_gap_to_the_outside_is_not_a_hole() -> None:
    # Objects are 4-connected, so background is 8-connected: (2, 2) escapes by (3, 3).
    mask = np.zeros((4, 4), bool)
    mask[1, 1:3] = True
    mask[2, 1] = True
    mask[2, 3] = True
    mask[3, 2] = True
    assert not fill_small_holes(mask, 100)[2, 2]


def test_objects_below_the_minimum_area_go() -> None:
    mask = square()
    mask[0, 0:2] = True  # 2 pixels
    cleaned = remove_small_objects(mask, 3)
    assert not cleaned[0, 0:2].any() and cleaned[3:9, 3:9].all()


def test_corner_touching_pixels_are_separate_objects() -> None:
    mask = np.eye(4, dtype=bool)
    assert not remove_small_objects(mask, 2).any()


def test_square_metres_become_pixels_on_the_grid(grid_of: Callable[..., Grid]) -> None:
    settings = MorphologySettings(min_area_m2=40, fill_holes_below_m2=8)
    resolved = settings.in_pixels(grid_of(10, 10, pixel_m=2.0))
    assert resolved.min_area_px == 10 and resolved.fill_holes_below_px == 2


def test_square_metres_need_a_grid() -> None:
    with pytest.raises(ConfigError, match="min_area_m2"):
        MorphologySettings(min_area_m2=40).in_pixels(None)


def test_pixels_and_square_metres_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="min_area_px or min_area_m2"):
        MorphologySettings(min_area_px=4, min_area_m2=40)
    with pytest.raises(ValidationError, match="must not be negative"):
        MorphologySettings(opening_px=-1)


def test_cleaning_a_strip_with_its_halo_equals_cleaning_the_whole(
    blobs: Callable[..., np.ndarray],
) -> None:
    mask = blobs(1, 60, 40, seed=3, sigma=2.0)[0]
    settings = PixelMorphology(
        opening_px=1, closing_px=2, smooth_px=1.0, fill_holes_below_px=6, min_area_px=9
    )
    whole = clean_mask(mask, settings)
    halo = settings.halo_px
    for start in range(0, 60, 7):
        stop = min(60, start + 7)
        read = slice(max(0, start - halo), min(60, stop + halo))
        strip = clean_mask(mask[read], settings)
        offset = start - read.start
        assert np.array_equal(strip[offset : offset + stop - start], whole[start:stop])
