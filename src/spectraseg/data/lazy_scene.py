"""`LazyScene`: a scene read window by window from its files, never whole.

Streamed training (`data/streamed.py`) reads the same arrays a `Scene` holds, but only for the
window it needs: pixels through `open_stack` (which warps or resamples only that window), the
spectral indices computed on them, and the labels rasterized for that window from the polygons
behind a spatial index (or read from the mask raster). Every step is per pixel, so a window of a
`LazyScene` equals the same slice of the `Scene` that `load_scene` would build.

The open files belong to one process: a DataLoader worker (forked or spawned) opens its own on
first read, as GDAL handles must not cross a fork.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from spectraseg.classes import ClassList
from spectraseg.data.indices import IndexSettings, add_indices
from spectraseg.data.rasterize import LabelRasterizer, rasterize_geometries
from spectraseg.grid import Grid
from spectraseg.io.labels import MaskEncoding
from spectraseg.io.masks import read_mask
from spectraseg.io.rasters import RasterStack, open_stack

__all__ = ["LazyScene", "StackSpec", "WindowLabels"]

Array = np.ndarray


@dataclass(frozen=True, eq=False)
class WindowLabels:
    """A scene's labels for any window of its grid: (mask (K, h, w) bool, ignore (h, w) bool).

    Exactly one of `rasterizer` (polygons) and `mask_file` (a raster mask) is set. `area`
    holds the labelled-area polygons (outside them every pixel is ignored); `positions` the
    classes kept by `data.classes`, in their order (None: all).
    """

    grid: Grid
    rasterizer: LabelRasterizer | None = None
    mask_file: Path | None = None
    classes: ClassList | None = None
    encoding: MaskEncoding = "auto"
    area: Array | None = None
    positions: tuple[int, ...] | None = None

    def read(self, window: Window | None = None) -> tuple[Array, Array]:
        """The labels of `window` (the whole grid when None)."""
        if self.rasterizer is not None:
            mask, ignore = self.rasterizer.rasterize(self.grid, window)
        else:
            if self.mask_file is None or self.classes is None:
                raise ValueError("WindowLabels needs a rasterizer or a mask file with classes")
            mask, ignore = read_mask(
                self.mask_file, self.classes, self.grid, encoding=self.encoding, window=window
            )
        if self.area is not None:
            target = self.grid.window(window) if window is not None else self.grid
            ignore |= ~rasterize_geometries(self.area, target)
        if self.positions is not None:
            mask = mask[list(self.positions)]
        return mask, ignore


@dataclass(frozen=True)
class StackSpec:
    """How `open_stack` reads a scene's files (the arguments `load_scene` gives it)."""

    images: tuple[Path, ...]
    band_names: tuple[str, ...] | None = None
    resolution: float | None = None
    sensor: str | None = None
    reference: Path | None = None
    shifts_px: dict[str, tuple[float, float]] | None = None

    def open(self) -> RasterStack:
        return open_stack(
            self.images,
            band_names=self.band_names,
            resolution=self.resolution,
            sensor=self.sensor,
            reference=self.reference,
            shifts_px=self.shifts_px,
        )


@dataclass(eq=False)
class LazyScene:
    """A labelled scene whose arrays are read on demand, one window at a time.

    `band_names` include the indices (appended after the raw bands, as in a `Scene`); `shape`
    and `grid` are the stacked grid's. Memory: the open file handles and the label polygons.
    """

    name: str
    stack: StackSpec
    indices: IndexSettings
    band_names: tuple[str, ...]
    grid: Grid
    labels: WindowLabels
    class_names: tuple[str, ...]
    _opened: tuple[int, RasterStack] | None = field(default=None, repr=False)

    @property
    def num_bands(self) -> int:
        return len(self.band_names)

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.shape

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def read(self, window: Window) -> tuple[Array, Array, Array, Array]:
        """(image (C, h, w) float32, valid (h, w), mask (K, h, w), ignore (h, w)) of `window`,
        which must lie inside the grid."""
        image, valid = self.read_pixels(window)
        mask, ignore = self.labels.read(window)
        return image, valid, mask, ignore

    def read_pixels(self, window: Window) -> tuple[Array, Array]:
        """(image, valid) of `window`: reflectance with the indices appended."""
        stack = self._stack()
        image, valid = stack.read(window)
        if self.indices.names:
            image, _, valid = add_indices(
                image,
                stack.band_names,
                valid,
                self.indices.names,
                custom=self.indices.custom,
                source=self.name,
            )
        return image, valid

    def usable(self, window: Window) -> Array:
        """(h, w) bool: valid pixels not ignored (what a `Scene`'s `~ignored()` holds)."""
        _, valid = self.read_pixels(window)
        _, ignore = self.labels.read(window)
        usable: Array = valid & ~ignore
        return usable

    def keep_classes(self, positions: tuple[int, ...], class_names: tuple[str, ...]) -> LazyScene:
        """The scene with only the classes at `positions` (the others become background)."""
        kept = (
            positions
            if self.labels.positions is None
            else tuple(self.labels.positions[p] for p in positions)
        )
        return replace(
            self, labels=replace(self.labels, positions=kept), class_names=class_names, _opened=None
        )

    def _stack(self) -> RasterStack:
        pid = os.getpid()
        if self._opened is None or self._opened[0] != pid:
            # A handle inherited through fork is left alone: the parent still owns it.
            self._opened = (pid, self.stack.open())
        return self._opened[1]

    def close(self) -> None:
        """Close the files this process opened."""
        if self._opened is not None and self._opened[0] == os.getpid():
            self._opened[1].close()
        self._opened = None

    def __getstate__(self) -> dict[str, Any]:
        # Spawned DataLoader workers get the recipe, not the open files.
        state = dict(self.__dict__)
        state["_opened"] = None
        return state
