# shapely ships no type information (types-shapely is not a dependency).
# mypy: disable-error-code="import-untyped"
"""Pixel polygons -> output coordinates: the grid's CRS, WGS84, or DSTL normalized coordinates.

Each step can break validity: reprojection bends a sliver over itself, rounding the coordinates
(to about 1/100 of a pixel, a power of ten) can move two vertices onto one. So validity is
repaired after reprojecting and after rounding; a repaired geometry is rounded again, and the
few that still fail are snapped to the rounding grid by GEOS's precision reducer, whose output
is valid by construction. Whatever collapses is dropped and counted in the log: nothing invalid
reaches a writer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform as transform_points
from shapely.geometry.base import BaseGeometry

from spectraseg.grid import Grid
from spectraseg.io.dstl import pixel_to_normalized_transform
from spectraseg.io.labels import reproject_geometries
from spectraseg.io.vectors import PolygonTable
from spectraseg.postprocess.polygons import POLYGON_TYPES, VectorObject, polygonal, repair
from spectraseg.postprocess.units import pixel_area_m2

log = logging.getLogger(__name__)

ROUNDING_SHARE_OF_PIXEL = 0.01


def apply_affine(geometries: np.ndarray, transform: Affine) -> np.ndarray:
    """Pixel (col, row) -> `transform @ (col, row)` for an array of geometries."""
    a, b, c, d, e, f = transform[:6]

    def move(xy: np.ndarray) -> np.ndarray:
        return np.column_stack([a * xy[:, 0] + b * xy[:, 1] + c, d * xy[:, 0] + e * xy[:, 1] + f])

    return np.asarray(shapely.transform(geometries, move), dtype=object)


def rounding_decimals(units_per_pixel: float) -> int:
    """Decimals that keep coordinates to about 1/100 of a pixel (never negative).

    Example:
        >>> rounding_decimals(10.0), rounding_decimals(0.5), rounding_decimals(2.7e-6)
        (1, 3, 8)
    """
    return max(0, math.ceil(-math.log10(units_per_pixel * ROUNDING_SHARE_OF_PIXEL)))


def units_per_pixel(
    transform: Affine, width: int, height: int, crs: CRS | None, target: CRS | None
) -> float:
    """Length of a pixel side at the scene centre in the output coordinates."""
    col, row = width / 2.0, height / 2.0
    points = [transform @ (col, row), transform @ (col + 1, row), transform @ (col, row + 1)]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if crs is not None and target is not None and crs != target:
        xs, ys = transform_points(crs, target, xs, ys)
    return min(math.hypot(xs[1] - xs[0], ys[1] - ys[0]), math.hypot(xs[2] - xs[0], ys[2] - ys[0]))


def _rounded(geometries: np.ndarray, decimals: int) -> np.ndarray:
    return np.asarray(
        shapely.transform(geometries, lambda xy: np.round(xy, decimals)), dtype=object
    )


def _good(geometries: np.ndarray) -> np.ndarray:
    if not len(geometries):
        return np.zeros(0, dtype=bool)
    kinds = np.isin(shapely.get_type_id(geometries), POLYGON_TYPES)
    return np.asarray(shapely.is_valid(geometries) & kinds & ~shapely.is_empty(geometries))


def finish_geometries(geometries: np.ndarray, decimals: int) -> tuple[np.ndarray, np.ndarray]:
    """Repair, round to `decimals`, repair again; (final geometries, kept) where `kept` marks
    the inputs that survived (collapsed ones are dropped)."""
    rounded = _rounded(repair(geometries), decimals)
    for index in np.flatnonzero(~_good(rounded)):
        fixed = _rounded(np.array([polygonal(rounded[index])], dtype=object), decimals)[0]
        if not _good(np.array([fixed], dtype=object))[0]:
            # The precision reducer snaps to the grid and returns valid geometry by design.
            fixed = polygonal(shapely.set_precision(rounded[index], 10.0**-decimals))
        rounded[index] = fixed
    kept = _good(rounded)
    dropped = int((~kept).sum())
    if dropped:
        log.info("%d polygon(s) collapsed when placed and rounded; dropped", dropped)
    return rounded[kept], kept


@dataclass(frozen=True)
class Placement:
    """Where pixel polygons go: `transform` to `crs` (None: pixel or normalized coordinates),
    then reprojected to `output_crs` when it differs."""

    transform: Affine
    crs: CRS | None
    output_crs: CRS | None

    @classmethod
    def for_grid(cls, grid: Grid, output_crs: CRS | None = None) -> Placement:
        return cls(grid.transform, grid.crs, output_crs if grid.crs is not None else None)

    @property
    def target_crs(self) -> CRS | None:
        return self.output_crs or self.crs

    def decimals(self, width: int, height: int) -> int:
        """Coordinate decimals for a `width` x `height` raster placed this way."""
        return rounding_decimals(
            units_per_pixel(self.transform, width, height, self.crs, self.target_crs)
        )

    def place(
        self, geometries: Sequence[BaseGeometry], decimals: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """(placed, valid, rounded geometries; kept mask over the input)."""
        array = np.asarray(list(geometries), dtype=object)
        placed = apply_affine(array, self.transform) if len(array) else array
        target = self.target_crs
        if self.crs is not None and target is not None and target != self.crs:
            placed = reproject_geometries(placed, self.crs, target, source="polygons")
        return finish_geometries(placed, decimals)


class TableBuilder:
    """Collects placed objects batch by batch (strip by strip) into one `PolygonTable`.

    Only the placed geometries and their attributes are kept, not the pixel polygons: memory is
    the output's own size. `table()` orders the rows by class and position, the same order
    whatever the strips were.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        class_ids: Sequence[int],
        grid: Grid,
        *,
        output_crs: CRS | None = None,
    ) -> None:
        self.class_names = tuple(class_names)
        self.class_ids = tuple(class_ids)
        self.placement = Placement.for_grid(grid, output_crs)
        self.decimals = self.placement.decimals(grid.width, grid.height)
        self._pixel_m2 = pixel_area_m2(grid) if grid.crs is not None else math.nan
        self._geometries: list[BaseGeometry] = []
        self._keys: list[tuple[int, float, float]] = []
        self._rows: list[tuple[int, int, float]] = []  # class index, pixels, mean probability

    def add(self, objects: Sequence[VectorObject]) -> None:
        geometries, kept = self.placement.place([o.geometry for o in objects], self.decimals)
        chosen = [o for o, keep in zip(objects, kept, strict=True) if keep]
        self._geometries.extend(geometries)
        self._keys.extend(o.sort_key for o in chosen)
        self._rows.extend((o.class_index, o.pixels, o.mean_prob) for o in chosen)

    def table(self) -> PolygonTable:
        """Attributes: `class_name`, `class_id`, `area_px` (pixels in the clean mask), `area_m2`
        (NaN without CRS), `mean_prob` (NaN for masks)."""
        order = sorted(range(len(self._keys)), key=self._keys.__getitem__)
        rows = [self._rows[i] for i in order]
        pixels = np.array([r[1] for r in rows], dtype=np.int64)
        attributes = {
            "class_name": np.array([self.class_names[r[0]] for r in rows], dtype=object),
            "class_id": np.array([self.class_ids[r[0]] for r in rows], dtype=np.int32),
            "area_px": pixels,
            "area_m2": pixels * self._pixel_m2,
            "mean_prob": np.round(np.array([r[2] for r in rows], dtype=np.float64), 6),
        }
        geometries = np.array([self._geometries[i] for i in order], dtype=object)
        return PolygonTable(geometries, attributes, self.placement.target_crs)


def objects_to_table(
    objects: Sequence[VectorObject],
    class_names: Sequence[str],
    class_ids: Sequence[int],
    grid: Grid,
    *,
    output_crs: CRS | None = None,
) -> tuple[PolygonTable, int]:
    """Objects in memory as a table of placed polygons, and the coordinate decimals kept."""
    builder = TableBuilder(class_names, class_ids, grid, output_crs=output_crs)
    builder.add(objects)
    return builder.table(), builder.decimals


def dstl_class_geometries(
    objects: Sequence[VectorObject],
    num_classes: int,
    grid: Grid,
    *,
    xmax: float,
    ymin: float,
) -> tuple[list[BaseGeometry], int]:
    """One valid MultiPolygon (maybe empty) per class in DSTL normalized coordinates.

    The objects of a class are merged (simplified neighbours may overlap, and a MultiPolygon
    with overlapping parts is invalid), then rounded; returns the geometries and the decimals.
    """
    transform = pixel_to_normalized_transform(xmax, ymin, grid.height, grid.width)
    placement = Placement(transform, None, None)
    decimals = placement.decimals(grid.width, grid.height)
    result: list[BaseGeometry] = []
    for k in range(num_classes):
        pixel_geometries = [o.geometry for o in objects if o.class_index == k]
        if not pixel_geometries:
            result.append(shapely.MultiPolygon())
            continue
        merged = polygonal(shapely.unary_union(pixel_geometries))
        final, kept = placement.place([merged], decimals)
        geometry = final[0] if kept.all() else shapely.MultiPolygon()
        if isinstance(geometry, shapely.Polygon):
            geometry = shapely.MultiPolygon([geometry])
        result.append(geometry)
    return result, decimals
