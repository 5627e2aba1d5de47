"""Window plans: the issue's window count, every pixel covered, reflection like numpy.pad."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from pydantic import ValidationError

from spectraseg.predict.tiling import TilingSettings, plan_axis, plan_windows, reflect_indices

SHAPES = [(1, 1), (2, 3), (5, 17), (37, 53), (64, 64), (100, 7), (129, 255), (300, 41)]
SETTINGS = [
    TilingSettings(window_px=16, overlap=0.5),
    TilingSettings(window_px=8, overlap=0.25),
    TilingSettings(window_px=32, overlap=0.0),
    TilingSettings(window_px=20, overlap=0.75),
    TilingSettings(window_px=16, overlap=0.5, centre_crop_px=4),
    TilingSettings(window_px=13, overlap=0.6, centre_crop_px=2),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=repr)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_every_pixel_lies_in_the_cropped_interior_of_some_window(shape, settings):
    plan = plan_windows(*shape, settings)
    assert plan.coverage().min() >= 1


@pytest.mark.parametrize("settings", SETTINGS, ids=repr)
@pytest.mark.parametrize("length", [1, 2, 9, 31, 64, 257, 1000])
def test_window_count_is_the_issue_formula(length, settings):
    window, margin, stride = settings.window_px, settings.margin_px, settings.stride_px
    starts = plan_axis(length, window, margin, stride)
    padded = length + 2 * margin
    expected = 1 if padded <= window else math.ceil((padded - window) / stride) + 1
    assert len(starts) == expected


@pytest.mark.parametrize("length", [9, 31, 64, 257, 1000])
def test_windows_start_at_minus_margin_and_the_last_is_flush_with_the_padded_edge(length):
    settings = TilingSettings(window_px=16, overlap=0.5)
    starts = plan_axis(length, 16, settings.margin_px, settings.stride_px)
    assert starts[0] == -settings.margin_px
    assert starts[-1] + 16 == length + settings.margin_px
    assert all(0 < b - a <= settings.stride_px for a, b in itertools.pairwise(starts))


def test_margin_and_stride_follow_the_overlap():
    settings = TilingSettings(window_px=256, overlap=0.5)
    assert (settings.overlap_px, settings.margin_px, settings.stride_px) == (128, 64, 128)
    assert TilingSettings(window_px=256, overlap=0.0).stride_px == 256


def test_a_1024_square_takes_64_windows_not_the_81_of_half_window_padding():
    assert plan_windows(1024, 1024, TilingSettings(window_px=256, overlap=0.5)).num_windows == 64


def test_an_image_smaller_than_a_window_gets_one_window():
    plan = plan_windows(5, 3, TilingSettings(window_px=64, overlap=0.5))
    assert plan.num_windows == 1
    assert (plan.extent_height, plan.extent_width) == (64, 64)


def test_windows_are_listed_row_by_row():
    plan = plan_windows(40, 70, TilingSettings(window_px=16, overlap=0.5))
    rows = [int(w.row_off) for w in plan.windows()]
    assert rows == sorted(rows)
    assert len(rows) == plan.num_windows


def test_a_crop_wider_than_half_the_overlap_is_refused_with_the_limit():
    with pytest.raises(ValidationError, match="at most 4"):
        TilingSettings(window_px=16, overlap=0.5, centre_crop_px=5)


@pytest.mark.parametrize("overlap", [-0.1, 1.0])
def test_overlap_must_be_in_zero_to_one(overlap):
    with pytest.raises(ValidationError):
        TilingSettings(overlap=overlap)


@pytest.mark.parametrize("length", [1, 2, 3, 7])
def test_reflect_indices_matches_numpy_pad_even_past_several_reflections(length):
    values = np.arange(length)
    pad = 3 * length + 2
    expected = np.pad(values, pad, mode="reflect") if length > 1 else np.zeros(2 * pad + 1)
    got = values[reflect_indices(np.arange(-pad, length + pad), length)]
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("align", [1, 4, 16])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_aligned_plans_start_every_window_in_the_same_phase_and_cover_every_pixel(shape, align):
    settings = TilingSettings(window_px=32, overlap=0.5, centre_crop_px=8, align_px=align)
    plan = plan_windows(*shape, settings)
    for starts in (plan.row_starts, plan.col_starts):
        assert all((start - starts[0]) % align == 0 for start in starts)
    assert plan.coverage().min() >= 1
    assert plan.extent_height == plan.row_starts[-1] + 32 + plan.margin_px


def test_without_alignment_the_plan_is_unchanged():
    aligned = plan_windows(100, 100, TilingSettings(window_px=32, overlap=0.5, align_px=1))
    assert aligned.row_starts[-1] + 32 == 100 + aligned.margin_px
