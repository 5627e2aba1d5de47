"""Blend overlapping window predictions: smooth weight windows and the Σw·p / Σw accumulator.

Each window's prediction is multiplied by a 2-D weight that is high in the window's centre and
low at its edges (where the model saw little context), added into running sums of w·p and w,
and divided at the end. Where windows agree the result is their common value exactly (a
constant prediction blends to that constant); where they disagree, the window that saw the
pixel best dominates, so no seam appears at window borders.

The windows are products of 1-D windows, all strictly positive so that every pixel a window
touches gets some weight:
- "spline": the squared-spline window of the "Smoothly-Blend-Image-Patches" approach
  (two quadratic pieces meeting at a quarter of the window), flat-topped and smooth;
- "hann": sin² over the window, sampled at pixel centres so that it never reaches 0;
- "flat": all ones, a plain average of overlapping windows (shows seams; for comparison).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

__all__ = [
    "WINDOW_FUNCTIONS",
    "RowBandAccumulator",
    "WindowFunction",
    "flat_window",
    "hann_window",
    "spline_window",
    "window_1d",
    "window_2d",
]

WindowFunction = Literal["spline", "hann", "flat"]


def _triangle(size: int) -> np.ndarray:
    """scipy.signal.windows.triang: a triangle peaking at 1 whose ends stay above 0."""
    n = np.arange(1, (size + 1) // 2 + 1, dtype=np.float64)
    if size % 2 == 0:
        half = (2 * n - 1) / size
        return np.concatenate([half, half[::-1]])
    half = 2 * n / (size + 1)
    return np.concatenate([half, half[-2::-1]])


def spline_window(size: int, power: int = 2) -> np.ndarray:
    """The 1-D squared-spline window, scaled to mean 1: (size,) float64, strictly positive.

    Outer quarters rise as (2·t)^power / 2 and the middle half falls off as
    1 - (2·(1 - t))^power / 2, where t is the triangle window; the pieces meet at 1/2.

    Example:
        >>> window = spline_window(8)
        >>> bool(window.min() > 0), bool(np.allclose(window, window[::-1]))
        (True, True)
    """
    triangle = _triangle(size)
    quarter = size // 4
    outer = (np.abs(2 * triangle) ** power) / 2
    inner = 1 - (np.abs(2 * (triangle - 1)) ** power) / 2
    middle = np.zeros(size, dtype=bool)
    middle[quarter : size - quarter] = True
    window: np.ndarray = np.where(middle, inner, outer)
    scaled: np.ndarray = window / window.mean()
    return scaled


def hann_window(size: int) -> np.ndarray:
    """sin²(π (i + ½) / size): a Hann window sampled at pixel centres, strictly positive.

    Example:
        >>> hann_window(4).round(3).tolist()
        [0.146, 0.854, 0.854, 0.146]
    """
    positions = (np.arange(size, dtype=np.float64) + 0.5) / size
    return np.sin(np.pi * positions) ** 2


def flat_window(size: int) -> np.ndarray:
    """All ones: every window pixel counts the same."""
    return np.ones(size, dtype=np.float64)


WINDOW_FUNCTIONS: dict[str, Callable[[int], np.ndarray]] = {
    "spline": spline_window,
    "hann": hann_window,
    "flat": flat_window,
}


def window_1d(name: WindowFunction, size: int) -> np.ndarray:
    """The 1-D window called `name`, (size,) float64."""
    try:
        function = WINDOW_FUNCTIONS[name]
    except KeyError:
        raise ValueError(
            f"unknown window function {name!r}; use one of {', '.join(WINDOW_FUNCTIONS)}"
        ) from None
    return function(size)


def window_2d(name: WindowFunction, size: int, *, crop_px: int = 0) -> np.ndarray:
    """The (size, size) float32 weight of one window: the outer product of two 1-D windows.

    `crop_px` zeroes that many pixels on each side (a centre crop); the rest stays positive.

    Example:
        >>> weights = window_2d("hann", 4, crop_px=1)
        >>> weights[0].tolist(), bool(weights[1:3, 1:3].min() > 0)
        ([0.0, 0.0, 0.0, 0.0], True)
    """
    if not 0 <= 2 * crop_px < size:
        raise ValueError(f"a crop of {crop_px} px per side leaves nothing of a {size} px window")
    line = window_1d(name, size)
    if crop_px:
        line = line.copy()
        line[:crop_px] = 0.0
        line[size - crop_px :] = 0.0
    return np.outer(line, line).astype(np.float32)


class RowBandAccumulator:
    """Σ w·p and Σ w over a band of `band_height` rows that moves down a tall extent.

    Windows are added top to bottom; once no later window reaches above row r, `release(r)`
    returns the blended rows above r and frees them for rows further down. The band is a ring
    buffer, so moving it copies nothing.

    Memory: (num_classes + 1) x band_height x width float32, whatever the extent's height.
    Coordinates are rows and columns of the extent (0 at its top-left corner).
    """

    def __init__(self, num_classes: int, width: int, band_height: int) -> None:
        self.num_classes = num_classes
        self.width = width
        self.band_height = band_height
        self.top = 0
        self._weighted = torch.zeros((num_classes, band_height, width), dtype=torch.float32)
        self._weights = torch.zeros((band_height, width), dtype=torch.float32)

    def _ring_slices(self, row: int, height: int) -> list[tuple[slice, slice]]:
        """(band slice, source slice) pairs for rows [row, row + height) of the extent."""
        start = row % self.band_height
        first = min(height, self.band_height - start)
        pieces = [(slice(start, start + first), slice(0, first))]
        if first < height:
            pieces.append((slice(0, height - first), slice(first, height)))
        return pieces

    def add(self, probs: torch.Tensor, weights: torch.Tensor, row: int, col: int) -> None:
        """Add one window: probs (K, h, w) and weights (h, w) at extent position (row, col).

        Pixels where any class is not finite (a model that spread NaN from nodata) get no
        weight from this window, so they cannot poison their neighbours' blend.
        """
        _, height, width = probs.shape
        if row < self.top or row + height > self.top + self.band_height:
            raise ValueError(
                f"rows [{row}, {row + height}) are outside the band "
                f"[{self.top}, {self.top + self.band_height}); add windows top to bottom"
            )
        # One reduction finds any NaN or infinity (probabilities cannot overflow a float sum).
        if not bool(torch.isfinite(probs.sum())):
            finite = torch.isfinite(probs).all(dim=0)
            weights = weights * finite
            probs = torch.nan_to_num(probs, nan=0.0, posinf=0.0, neginf=0.0)
        columns = slice(col, col + width)
        for band_rows, source_rows in self._ring_slices(row, height):
            self._weighted[:, band_rows, columns].addcmul_(
                probs[:, source_rows], weights[source_rows]
            )
            self._weights[band_rows, columns] += weights[source_rows]

    def release(self, until_row: int) -> np.ndarray:
        """Blended rows [top, until_row) as (K, rows, width) float32, NaN where no weight fell.

        The released rows are cleared and the band moves down to start at `until_row`.
        """
        count = until_row - self.top
        if count < 0 or count > self.band_height:
            raise ValueError(f"cannot release rows up to {until_row} from a band at {self.top}")
        blended = np.empty((self.num_classes, count, self.width), dtype=np.float32)
        for band_rows, target_rows in self._ring_slices(self.top, count):
            weighted = self._weighted[:, band_rows]
            weights = self._weights[band_rows]
            # Divided straight into the result: no temporary the size of the band.
            # 0/0 is NaN where no window fell; x/0 cannot happen, as w > 0 wherever w·p was added.
            torch.div(weighted, weights, out=torch.from_numpy(blended[:, target_rows]))
            weighted.zero_()
            weights.zero_()
        self.top = until_row
        return blended
