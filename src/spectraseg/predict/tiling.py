"""Window plans for rasters of any shape: where each prediction window goes.

A window's edges see less context than its centre, so predictions there are worse. The plan
pads each side of the raster by a margin m = overlap x window / 2 (filled by reflection when the
pixels are read) and lays windows over the padded extent with a stride of window - overlap,
the last window of each axis flush with the padded edge. Every raster pixel then lies at least
m pixels inside some window, and a blending window (see `blending.py`) gives the edges of each
window little weight. The plan uses no more windows than that needs: n = ceil((L + 2m - w) / s) + 1
per axis, not a fixed padding of half a window.

Coordinates in a plan are raster pixel coordinates: a window may start at a negative row or
column and end past the last one; `reflect_indices` maps those back into the raster.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from pydantic import Field, model_validator
from rasterio.windows import Window

from spectraseg.settings import Settings

__all__ = [
    "TilingSettings",
    "WindowPlan",
    "plan_axis",
    "plan_windows",
    "reflect_indices",
]


class TilingSettings(Settings):
    """How a raster is cut into prediction windows.

    In YAML: `predict: {tiling: {window_px: 256, overlap: 0.5}}`.
    """

    window_px: int = Field(default=256, ge=1)
    """Side of the square window the model sees, in pixels (usually the training patch size)."""
    overlap: float = Field(default=0.5, ge=0.0, lt=1.0)
    """Share of a window that its neighbour sees too. It must cover the model's receptive field
    near the window edge for the blend to hide it; 0.5 costs about 4x the windows of 0."""
    centre_crop_px: int = Field(default=0, ge=0)
    """Pixels dropped from each side of every window's prediction before blending, for models
    whose edge pixels are unreliable (e.g. trained on valid-region losses). At most half the
    overlap, so that the cropped windows still cover every pixel."""
    align_px: int = Field(default=1, ge=1)
    """Window starts, counted from the first, are multiples of this. Set to the model's size
    multiple (2**depth for a U-Net), every window, the last one included, meets the model's
    pooling grid at the same phase, so overlapping windows predict the same function of the
    image and agree beyond the model's edge margin. The last window of an axis then reaches
    up to align_px - 1 pixels past the padded edge (reflected too). 1 = no alignment."""

    @model_validator(mode="after")
    def _crop_fits_in_overlap(self) -> TilingSettings:
        if self.centre_crop_px > self.margin_px:
            raise ValueError(
                f"centre_crop_px={self.centre_crop_px} leaves pixels uncovered: with window_px="
                f"{self.window_px} and overlap={self.overlap} it can be at most {self.margin_px}; "
                "raise the overlap or lower the crop"
            )
        return self

    @property
    def overlap_px(self) -> int:
        """Pixels shared by neighbouring windows (at most window_px - 1, so windows advance)."""
        return min(round(self.overlap * self.window_px), self.window_px - 1)

    @property
    def margin_px(self) -> int:
        """Reflection padding on each side of the raster: half the overlap."""
        return self.overlap_px // 2

    @property
    def stride_px(self) -> int:
        """Distance between the starts of neighbouring windows."""
        return self.window_px - self.overlap_px


def plan_axis(
    length: int, window_px: int, margin_px: int, stride_px: int, align_px: int = 1
) -> tuple[int, ...]:
    """Window starts along one axis, in raster coordinates (the first is -margin_px).

    The padded extent is [-m, length + m); windows advance by `stride_px` and the last one
    ends flush with the padded edge, or, with `align_px`, starts at the next multiple of
    `align_px` from the first (reaching a little past the edge). When the padded extent is
    shorter than one window, a single window starts at -m and reaches past the end (those
    pixels are reflected too).

    Example:
        >>> plan_axis(10, window_px=8, margin_px=2, stride_px=4)
        (-2, 2, 4)
        >>> plan_axis(10, window_px=8, margin_px=2, stride_px=4, align_px=4)
        (-2, 2, 6)
        >>> plan_axis(3, window_px=8, margin_px=2, stride_px=4)
        (-2,)
    """
    if length < 1 or window_px < 1 or stride_px < 1 or margin_px < 0 or align_px < 1:
        raise ValueError(f"bad axis plan: length={length} window={window_px} stride={stride_px}")
    padded = length + 2 * margin_px
    if padded <= window_px:
        return (-margin_px,)
    count = math.ceil((padded - window_px) / stride_px) + 1
    last = -(-(padded - window_px) // align_px) * align_px
    starts = [i * stride_px for i in range(count - 1)] + [last]
    return tuple(start - margin_px for start in starts)


@dataclass(frozen=True)
class WindowPlan:
    """All windows over a `height` x `width` raster, as rows of windows from top to bottom.

    `extent_*` give the padded area the windows span, in raster coordinates: rows
    [-margin_px, -margin_px + extent_height), and the same for columns; it reaches past the
    padded raster when the plan is aligned or the raster is smaller than a window.
    """

    height: int
    width: int
    window_px: int
    margin_px: int
    crop_px: int
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]

    @property
    def num_windows(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    @property
    def extent_height(self) -> int:
        return self.row_starts[-1] + self.window_px + self.margin_px

    @property
    def extent_width(self) -> int:
        return self.col_starts[-1] + self.window_px + self.margin_px

    @property
    def pixel_passes(self) -> int:
        """Window pixels the model sees for one pass over the plan (times TTA for the total)."""
        return self.num_windows * self.window_px * self.window_px

    def windows(self) -> Iterator[Window]:
        """Every window in row-major order (rows of windows top to bottom, each left to right)."""
        for row in self.row_starts:
            for col in self.col_starts:
                yield Window(col, row, self.window_px, self.window_px)

    def coverage(self) -> np.ndarray:
        """(height, width) count of windows whose cropped interior holds each pixel.

        Memory is that of the raster: for tests and small rasters, not for planning big ones.
        """
        rows = np.zeros(self.height, dtype=np.int64)
        cols = np.zeros(self.width, dtype=np.int64)
        inner = self.window_px - self.crop_px
        for counts, starts, length in (
            (rows, self.row_starts, self.height),
            (cols, self.col_starts, self.width),
        ):
            for start in starts:
                counts[max(start + self.crop_px, 0) : max(min(start + inner, length), 0)] += 1
        return rows[:, None] * cols[None, :]


def plan_windows(height: int, width: int, settings: TilingSettings) -> WindowPlan:
    """The windows that cover a `height` x `width` raster with `settings`' window and overlap.

    Example:
        >>> plan = plan_windows(1024, 1024, TilingSettings(window_px=256, overlap=0.5))
        >>> plan.num_windows, plan.row_starts[:3], plan.row_starts[-1]
        (64, (-64, 64, 192), 832)
    """
    margin, stride, window = settings.margin_px, settings.stride_px, settings.window_px
    return WindowPlan(
        height=height,
        width=width,
        window_px=window,
        margin_px=margin,
        crop_px=settings.centre_crop_px,
        row_starts=plan_axis(height, window, margin, stride, settings.align_px),
        col_starts=plan_axis(width, window, margin, stride, settings.align_px),
    )


def reflect_indices(indices: np.ndarray, length: int) -> np.ndarray:
    """Map positions outside [0, length) into it by mirror reflection without repeating the edge.

    The same as `numpy.pad(..., mode="reflect")`, for any distance past the edge (repeated
    reflections when the pad is longer than the axis).

    Example:
        >>> reflect_indices(np.arange(-3, 6), 3).tolist()
        [1, 2, 1, 0, 1, 2, 1, 0, 1]
    """
    if length == 1:
        return np.zeros_like(indices)
    period = 2 * (length - 1)
    folded = np.mod(indices, period)
    reflected: np.ndarray = np.where(folded < length, folded, period - folded)
    return reflected
