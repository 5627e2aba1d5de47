"""`Grid`: the georeference (CRS, affine transform, shape) that travels with every array.

Arrays in spectraseg never carry coordinates themselves; whatever is laid on a grid (image,
mask, probabilities) is paired with the `Grid` it was read from, so outputs land on exactly the
input's pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window


@dataclass(frozen=True)
class Grid:
    """A raster grid: `height` x `width` pixels placed by `transform` in `crs`.

    `crs` is None for rasters in pixel coordinates (DSTL images carry no georeference).
    """

    crs: CRS | None
    transform: Affine
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width), the order of numpy arrays."""
        return (self.height, self.width)

    @property
    def resolution(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units, both positive."""
        return (
            math.hypot(self.transform.a, self.transform.d),
            math.hypot(self.transform.b, self.transform.e),
        )

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) of the outer pixel edges, for north-up grids."""
        left, top = self.pixel_to_world(0, 0)
        right, bottom = self.pixel_to_world(self.width, self.height)
        return (min(left, right), min(bottom, top), max(left, right), max(bottom, top))

    def pixel_to_world(self, col: float, row: float) -> tuple[float, float]:
        """CRS coordinates (x, y) of a pixel position (col, row); (0, 0) is the top-left corner."""
        t = self.transform
        return (t.a * col + t.b * row + t.c, t.d * col + t.e * row + t.f)

    @property
    def is_georeferenced(self) -> bool:
        return self.crs is not None

    def window(self, window: Window) -> Grid:
        """The sub-grid covered by `window` (which may extend past the edges)."""
        return Grid(
            crs=self.crs,
            transform=self.transform @ Affine.translation(window.col_off, window.row_off),
            width=int(window.width),
            height=int(window.height),
        )

    def with_resolution(self, resolution: float) -> Grid:
        """The grid over the same extent at another square pixel size (north-up grids only)."""
        left, bottom, right, top = self.bounds
        width = max(1, round((right - left) / resolution))
        height = max(1, round((top - bottom) / resolution))
        return Grid(
            crs=self.crs,
            transform=Affine(resolution, 0.0, left, 0.0, -resolution, top),
            width=width,
            height=height,
        )

    def describe(self) -> str:
        """One line for logs and error messages."""
        crs = self.crs.to_string() if self.crs else "no CRS (pixel coordinates)"
        x, y = self.resolution
        return f"{self.width} x {self.height} px, {x:g} x {y:g} per px, {crs}"
