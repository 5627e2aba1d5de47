# shapely ships no type information (types-shapely is not a dependency).
# mypy: disable-error-code="import-untyped"
"""Clean masks -> valid polygons with holes, in pixel coordinates, strip by strip.

Vectorizing runs over full-width strips of rows, so a scene larger than memory costs one strip
(plus the halo post-processing needs) at a time. Within a strip each class's 4-connected
objects become pixel-exact polygons; an object cut by a strip border is held back until the
next strip shows whether it continues, and its pieces are then merged. Every finished object is
put in a canonical form (no collinear vertices, normalized ring order) before it is simplified,
so the polygons are the same whatever the strip height, including one strip for everything.

Simplification (Douglas-Peucker, topology preserving) takes a tolerance in pixels or metres;
what it leaves invalid is repaired, what it collapses is dropped. `placement.py` then puts the
polygons in output coordinates.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from affine import Affine
from pydantic import model_validator
from rasterio import features
from scipy import ndimage
from shapely.geometry.base import BaseGeometry

from spectraseg.errors import ConfigError
from spectraseg.grid import Grid
from spectraseg.postprocess.morphology import OBJECT_STRUCTURE
from spectraseg.postprocess.units import metres_to_pixels
from spectraseg.settings import Settings

log = logging.getLogger(__name__)

# Half a pixel removes the staircase along straight edges without moving any edge past a pixel
# centre: rasterized again, the polygons give back the mask (IoU 1.0 on the real sets).
DEFAULT_SIMPLIFY_PX = 0.5
# Per pixel in a strip: K probabilities (4 bytes), K mask planes and the temporaries of the
# morphology and labelling (about 12 bytes more).
BYTES_PER_CLASS_PIXEL = 17
MIN_STRIP_ROWS = 16
POLYGON_TYPES = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)

RowReader = Callable[[int, int], tuple[np.ndarray | None, np.ndarray | None]]
Cleaner = Callable[[np.ndarray | None, np.ndarray | None], np.ndarray]


class PolygonSettings(Settings):
    """How masks become polygons.

    `simplify_px` or `simplify_m` (not both) sets the Douglas-Peucker tolerance; 0 keeps the
    pixel staircase. `strip_rows` (0: chosen so that a strip needs about `memory_mb`) is the
    height of the strips a raster is vectorized in; it changes memory, never the result.
    """

    simplify_px: float = DEFAULT_SIMPLIFY_PX
    simplify_m: float = 0.0
    strip_rows: int = 0
    memory_mb: float = 256.0

    @model_validator(mode="after")
    def _check(self) -> PolygonSettings:
        if self.simplify_px < 0 or self.simplify_m < 0 or self.strip_rows < 0:
            raise ValueError("simplify_px, simplify_m and strip_rows must not be negative")
        if self.memory_mb <= 0:
            raise ValueError("memory_mb must be positive")
        return self

    def tolerance_px(self, grid: Grid | None) -> float:
        """The simplification tolerance in pixels of `grid` (metres converted)."""
        if not self.simplify_m:
            return self.simplify_px
        if grid is None:
            raise ConfigError("polygons.simplify_m needs a raster grid; use simplify_px.")
        return metres_to_pixels(self.simplify_m, grid, what="polygons.simplify_m")

    def rows_per_strip(self, width: int, num_classes: int, halo_px: int) -> int:
        """Strip height: the setting, or what fits `memory_mb` beside the halo rows."""
        if self.strip_rows:
            return self.strip_rows
        budget = self.memory_mb * 1e6 / (BYTES_PER_CLASS_PIXEL * max(num_classes, 1) * width)
        return max(MIN_STRIP_ROWS, int(budget) - 2 * halo_px)


@dataclass(frozen=True)
class VectorObject:
    """One object: its polygon in pixel coordinates (col, row) and what it was made of."""

    class_index: int
    geometry: BaseGeometry
    pixels: int  # pixel count of the object in the clean mask (its area before simplifying)
    mean_prob: float  # mean probability over those pixels; NaN when made from a mask

    @functools.cached_property
    def sort_key(self) -> tuple[int, float, float]:
        """(class, top, left) of the object's top-left pixel corner: unique within a class, so
        objects sort the same way whatever the strips were."""
        coordinates = shapely.get_coordinates(self.geometry)
        top = float(coordinates[:, 1].min())
        left = float(coordinates[coordinates[:, 1] == top, 0].min())
        return (self.class_index, top, left)


@dataclass
class _Piece:
    geometry: BaseGeometry
    pixels: int
    prob_sum: float


def canonical(geometries: np.ndarray) -> np.ndarray:
    """The same polygons without collinear vertices and with normalized ring order and starts.

    Example:
        >>> polygon = shapely.Polygon([(0, 0), (1, 0), (2, 0), (2, 1), (0, 1)])
        >>> canonical(np.array([polygon]))[0].wkt
        'POLYGON ((0 0, 0 1, 2 1, 2 0, 0 0))'
    """
    # Tolerance 0 only drops exactly collinear vertices, so the plain (faster) algorithm
    # cannot change the shape.
    simplified = shapely.simplify(geometries, 0.0, preserve_topology=False)
    return np.asarray(shapely.normalize(simplified), dtype=object)


def polygonal(geometry: BaseGeometry) -> BaseGeometry:
    """The polygonal part of a geometry as one valid Polygon or MultiPolygon (maybe empty)."""
    if geometry.is_empty:
        return shapely.MultiPolygon()
    if isinstance(geometry, shapely.Polygon | shapely.MultiPolygon) and geometry.is_valid:
        return geometry
    repaired = shapely.make_valid(geometry) if not geometry.is_valid else geometry
    parts = [
        part
        for part in shapely.get_parts(repaired)
        if isinstance(part, shapely.Polygon | shapely.MultiPolygon) and not part.is_empty
    ]
    if not parts:
        return shapely.MultiPolygon()
    merged = parts[0] if len(parts) == 1 else shapely.unary_union(parts)
    if isinstance(merged, shapely.Polygon | shapely.MultiPolygon):
        return merged
    return polygonal(merged)


def repair(geometries: np.ndarray) -> np.ndarray:
    """Every geometry valid and polygonal: the (rare) others go through `polygonal`."""
    result = np.asarray(geometries, dtype=object).copy()
    if not len(result):
        return result
    good = shapely.is_valid(result) & np.isin(shapely.get_type_id(result), POLYGON_TYPES)
    for index in np.flatnonzero(~good):
        result[index] = polygonal(result[index])
    return result


def _polygon(geojson: dict[str, object]) -> BaseGeometry:
    # shapely.geometry.shape() builds rings point by point in Python; arrays are 2x faster.
    rings = geojson["coordinates"]
    assert isinstance(rings, list)
    shell = np.asarray(rings[0], dtype=np.float64)
    holes = [np.asarray(ring, dtype=np.float64) for ring in rings[1:]]
    return shapely.Polygon(shell, holes)


class StripStitcher:
    """Turns one class's mask, fed strip by strip from the top, into whole objects.

    Pieces touching the strip's bottom row wait for the next strip; pieces of consecutive strips
    that touch across the border (a pixel above a pixel) are the same object. An object is
    finished as soon as no piece of it touches the last strip's bottom row.
    """

    def __init__(self) -> None:
        self._pieces: dict[int, _Piece] = {}
        self._parent: dict[int, int] = {}
        self._previous_bottom: np.ndarray | None = None
        self._next_id = 1

    def _find(self, piece: int) -> int:
        root = piece
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[piece] != root:  # path compression
            self._parent[piece], piece = root, self._parent[piece]
        return root

    def _union(self, first: int, second: int) -> None:
        a, b = self._find(first), self._find(second)
        if a != b:
            self._parent[max(a, b)] = min(a, b)

    def add(
        self, mask: np.ndarray, probs: np.ndarray | None, row_off: int, *, last: bool
    ) -> list[tuple[BaseGeometry, int, float]]:
        """Feed the next strip's (h, W) mask (and probabilities); get the finished objects.

        Returns (canonical polygon in pixel coordinates, pixel count, probability sum) per
        object; the sum is NaN without probabilities.
        """
        labels, count = ndimage.label(mask, structure=OBJECT_STRUCTURE)
        base = self._next_id - 1
        self._next_id += count
        if count:
            flat = labels.ravel()
            pixels = np.bincount(flat, minlength=count + 1)
            if probs is not None:
                weights = np.nan_to_num(probs.astype(np.float64, copy=False)).ravel()
                sums = np.bincount(flat, weights=weights, minlength=count + 1)
            else:
                sums = np.full(count + 1, math.nan)
            shapes = features.shapes(
                labels.astype(np.int32, copy=False),
                mask=labels > 0,
                connectivity=4,
                transform=Affine.translation(0, row_off),
            )
            for geometry, value in shapes:
                local = int(value)
                piece = base + local
                self._pieces[piece] = _Piece(
                    _polygon(geometry), int(pixels[local]), float(sums[local])
                )
                self._parent[piece] = piece
        if self._previous_bottom is not None and count:
            above, below = self._previous_bottom, labels[0]
            touching = (above > 0) & (below > 0)
            pairs = set(zip(above[touching].tolist(), below[touching].tolist(), strict=True))
            for upper, lower in pairs:
                self._union(int(upper), base + int(lower))
        open_roots: set[int] = set()
        if not last and count:
            bottom = labels[-1]
            self._previous_bottom = np.where(bottom > 0, bottom + base, 0)
            open_roots = {self._find(int(p)) for p in np.unique(self._previous_bottom) if p}
        else:
            self._previous_bottom = None
        return self._finish(open_roots)

    def _finish(self, open_roots: set[int]) -> list[tuple[BaseGeometry, int, float]]:
        groups: dict[int, list[int]] = {}
        for piece in self._pieces:
            root = self._find(piece)
            if root not in open_roots:
                groups.setdefault(root, []).append(piece)
        merged: list[BaseGeometry] = []
        pixels: list[int] = []
        sums: list[float] = []
        for members in groups.values():
            pieces = [self._pieces.pop(m) for m in members]
            for member in members:
                del self._parent[member]
            geometries = [p.geometry for p in pieces]
            merged.append(
                geometries[0] if len(geometries) == 1 else shapely.unary_union(geometries)
            )
            pixels.append(sum(p.pixels for p in pieces))
            sums.append(sum(p.prob_sum for p in pieces))
        if not merged:
            return []
        shapes = canonical(np.asarray(merged, dtype=object))
        return list(zip(shapes.tolist(), pixels, sums, strict=True))


def strips(height: int, rows: int, halo: int) -> Iterator[tuple[int, int, int, int]]:
    """(read_start, read_stop, core_start, core_stop) rows for each strip, top to bottom."""
    for start in range(0, height, rows):
        stop = min(height, start + rows)
        yield max(0, start - halo), min(height, stop + halo), start, stop


def simplify_objects(
    found: Sequence[tuple[int, BaseGeometry, int, float]], tolerance_px: float
) -> list[VectorObject]:
    """Simplify (class, polygon, pixels, probability sum) items into valid `VectorObject`s."""
    if not found:
        return []
    geometries = np.asarray([item[1] for item in found], dtype=object)
    if tolerance_px > 0:
        geometries = repair(shapely.simplify(geometries, tolerance_px, preserve_topology=True))
    objects = [
        VectorObject(k, geometry, pixels, prob_sum / pixels if pixels else math.nan)
        for (k, _, pixels, prob_sum), geometry in zip(found, geometries, strict=True)
        if not geometry.is_empty
    ]
    return sorted(objects, key=lambda item: item.sort_key)


def iter_object_batches(
    read_rows: RowReader,
    *,
    height: int,
    width: int,
    num_classes: int,
    clean: Cleaner,
    halo_px: int,
    settings: PolygonSettings,
    grid: Grid | None,
    skip_classes: frozenset[int] = frozenset(),
    advance: Callable[[float], None] | None = None,
) -> Iterator[list[VectorObject]]:
    """The objects finished in each strip, simplified and valid, in pixel coordinates.

    Args:
        read_rows: `(row_off, rows) -> (probs, mask)` for full-width rows; probs (K, rows, W)
            float with NaN where invalid, mask (K, rows, W) bool; either may be None.
        clean: `(probs, mask) -> (K, rows, W)` bool clean masks (the post-processing chain).
        halo_px: rows `clean` needs beyond a strip to be exact there.
        grid: converts `simplify_m` to pixels (an error for a grid without CRS).
        skip_classes: class positions not to vectorize (still cleaned: rules may need them).
        advance: told the rows done, a class at a time (a share of the strip's rows), for a
            progress bar that moves even when the raster is one strip.
    """
    rows = settings.rows_per_strip(width, num_classes, halo_px)
    active = [k for k in range(num_classes) if k not in skip_classes]
    tolerance = settings.tolerance_px(grid)
    stitchers = [StripStitcher() for _ in range(num_classes)]
    log.debug("vectorizing in strips of %d rows (halo %d)", rows, halo_px)
    for read_start, read_stop, core_start, core_stop in strips(height, rows, halo_px):
        probs, mask = read_rows(read_start, read_stop - read_start)
        cleaned = clean(probs, mask)
        core = slice(core_start - read_start, core_stop - read_start)
        batch: list[VectorObject] = []
        for k in active:  # objects sort by class first: per-class lists concatenate in order
            core_probs = probs[k, core] if probs is not None else None
            finished = stitchers[k].add(
                cleaned[k, core], core_probs, core_start, last=core_stop >= height
            )
            found = [(k, geometry, pixels, prob_sum) for geometry, pixels, prob_sum in finished]
            batch.extend(simplify_objects(found, tolerance))
            if advance is not None:
                advance((core_stop - core_start) / len(active))
        yield batch


def vectorize_rows(
    read_rows: RowReader,
    *,
    height: int,
    width: int,
    num_classes: int,
    clean: Cleaner,
    halo_px: int,
    settings: PolygonSettings,
    grid: Grid | None,
    skip_classes: frozenset[int] = frozenset(),
) -> list[VectorObject]:
    """Every object of every class (see `iter_object_batches`), sorted by class and position."""
    batches = iter_object_batches(
        read_rows,
        height=height,
        width=width,
        num_classes=num_classes,
        clean=clean,
        halo_px=halo_px,
        settings=settings,
        grid=grid,
        skip_classes=skip_classes,
    )
    return sorted((o for batch in batches for o in batch), key=lambda item: item.sort_key)


def vectorize_masks(
    mask: np.ndarray,
    *,
    probs: np.ndarray | None = None,
    settings: PolygonSettings | None = None,
    grid: Grid | None = None,
) -> list[VectorObject]:
    """Polygons of a clean (K, H, W) bool mask in memory (pixel coordinates).

    Example:
        >>> mask = np.zeros((1, 4, 4), bool); mask[0, 1:3, 1:3] = True
        >>> [(o.geometry.wkt, o.pixels) for o in vectorize_masks(mask)]
        [('POLYGON ((1 1, 1 3, 3 3, 3 1, 1 1))', 4)]
    """

    def read_rows(row_off: int, rows: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        window = slice(row_off, row_off + rows)
        return (probs[:, window] if probs is not None else None), mask[:, window]

    def identity(_: np.ndarray | None, clean_mask: np.ndarray | None) -> np.ndarray:
        assert clean_mask is not None
        return clean_mask

    return vectorize_rows(
        read_rows,
        height=mask.shape[1],
        width=mask.shape[2],
        num_classes=mask.shape[0],
        clean=identity,
        halo_px=0,
        settings=settings or PolygonSettings(),
        grid=grid,
    )
