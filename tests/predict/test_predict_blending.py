"""Blending windows and the Σw·p / Σw accumulator over a moving band of rows."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal.windows
import torch

from spectraseg.predict.blending import (
    WINDOW_FUNCTIONS,
    RowBandAccumulator,
    spline_window,
    window_1d,
    window_2d,
)


@pytest.mark.parametrize("name", sorted(WINDOW_FUNCTIONS))
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 16, 17, 255, 256])
def test_windows_are_strictly_positive_and_symmetric(name, size):
    window = window_1d(name, size)
    assert window.shape == (size,)
    assert window.min() > 0
    assert np.allclose(window, window[::-1])


def _blog_post_spline(size: int, power: int = 2) -> np.ndarray:
    """The window of the "Smoothly-Blend-Image-Patches" code, for sizes of 4 and more."""
    intersection = int(size / 4)
    outer = (abs(2 * scipy.signal.windows.triang(size)) ** power) / 2
    outer[intersection:-intersection] = 0
    inner = 1 - (abs(2 * (scipy.signal.windows.triang(size) - 1)) ** power) / 2
    inner[:intersection] = 0
    inner[-intersection:] = 0
    window = inner + outer
    return window / np.average(window)


@pytest.mark.parametrize("size", [4, 7, 16, 33, 256])
def test_spline_window_is_the_blog_posts_squared_spline(size):
    assert np.allclose(spline_window(size), _blog_post_spline(size))


def test_spline_window_peaks_in_the_centre_and_is_low_at_the_edges():
    window = spline_window(256)
    assert window[128] == window.max()
    assert window[0] < 0.01 * window.max()


def test_2d_window_is_the_outer_product_of_1d_windows():
    line = window_1d("hann", 9)
    assert np.allclose(window_2d("hann", 9), np.outer(line, line))


def test_centre_crop_zeroes_the_border_and_keeps_the_centre_positive():
    weights = window_2d("spline", 16, crop_px=3)
    assert not weights[:3].any() and not weights[-3:].any()
    assert not weights[:, :3].any() and not weights[:, -3:].any()
    assert weights[3:-3, 3:-3].min() > 0


def test_unknown_window_function_names_the_choices():
    with pytest.raises(ValueError, match="spline, hann, flat"):
        window_1d("gauss", 8)  # type: ignore[arg-type]


def test_blending_a_constant_prediction_returns_the_constant():
    accumulator = RowBandAccumulator(num_classes=2, width=30, band_height=10)
    weights = torch.from_numpy(window_2d("spline", 10))
    constant = torch.full((2, 10, 10), 0.3)
    for row in (0, 5, 10):
        accumulator.release(row)
        for col in (0, 7, 14, 20):
            accumulator.add(constant, weights, row, col)
    blended = accumulator.release(20)
    assert np.allclose(blended, 0.3, atol=1e-6)


def test_rows_no_window_reached_come_out_nan():
    accumulator = RowBandAccumulator(num_classes=1, width=8, band_height=4)
    accumulator.add(torch.ones(1, 2, 4), torch.ones(2, 4), row=0, col=0)
    blended = accumulator.release(4)
    assert np.all(blended[:, :2, :4] == 1)
    assert np.isnan(blended[:, 2:]).all() and np.isnan(blended[:, :, 4:]).all()


def test_the_band_wraps_around_and_blends_like_full_arrays():
    rng = np.random.default_rng(1)
    height, width, size = 23, 19, 6
    accumulator = RowBandAccumulator(num_classes=2, width=width, band_height=size)
    weighted_sum = np.zeros((2, height, width))
    weight_sum = np.zeros((height, width))
    released = []
    for row in range(0, height - size + 1, 4):
        released.append(accumulator.release(row))
        for col in (0, 5, 10, width - size):
            probs = rng.random((2, size, size)).astype(np.float32)
            weights = rng.random((size, size)).astype(np.float32) + 0.1
            accumulator.add(torch.from_numpy(probs), torch.from_numpy(weights), row, col)
            weighted_sum[:, row : row + size, col : col + size] += weights * probs
            weight_sum[row : row + size, col : col + size] += weights
    released.append(accumulator.release(accumulator.top + size))
    blended = np.concatenate(released, axis=1)
    covered = weight_sum[: blended.shape[1]] > 0
    expected = weighted_sum[:, : blended.shape[1]] / np.where(
        covered, weight_sum[: blended.shape[1]], 1
    )
    assert np.allclose(blended[:, covered], expected[:, covered], atol=1e-5)


def test_a_window_above_the_band_is_refused():
    accumulator = RowBandAccumulator(num_classes=1, width=8, band_height=4)
    accumulator.release(2)
    with pytest.raises(ValueError, match="top to bottom"):
        accumulator.add(torch.ones(1, 4, 4), torch.ones(4, 4), row=0, col=0)


def test_nan_predictions_get_no_weight_and_do_not_spread():
    accumulator = RowBandAccumulator(num_classes=1, width=4, band_height=4)
    poisoned = torch.full((1, 4, 4), float("nan"))
    poisoned[:, :, 2:] = 0.5
    accumulator.add(poisoned, torch.ones(4, 4), row=0, col=0)
    accumulator.add(torch.full((1, 4, 2), 0.25), torch.ones(4, 2), row=0, col=0)
    blended = accumulator.release(4)
    assert np.allclose(blended[:, :, :2], 0.25)
    assert np.allclose(blended[:, :, 2:], 0.5)
