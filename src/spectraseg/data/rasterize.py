# shapely ships no type information (types-shapely is not a dependency).
# mypy: disable-error-code="import-untyped"
"""Polygons -> per-class mask stacks on a grid, window by window; and masks -> polygons.

Masks are multi-label (K, H, W) bool stacks: DSTL classes overlap (a track through crops), so a
pixel may belong to several classes, and each class is burnt on its own plane.

Large scenes: a `LabelRasterizer` keeps the polygons in a spatial index (shapely's STRtree) and
rasterizes one window at a time, touching only the polygons that meet the window, so memory is
bounded by the window (K x window pixels bytes) and not by the scene. `ClassPixelIndex` is the
per-class "where are the pixels" summary class-balanced sampling needs, built by streaming the
same windows: a count of each class's pixels per block of `block_px` x `block_px`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import shapely
from rasterio import features
from rasterio.windows import Window
from shapely.geometry.base import BaseGeometry

from spectraseg.grid import Grid

logger = logging.getLogger(__name__)

Array = np.ndarray


def _window_box(grid: Grid) -> BaseGeometry:
    left, bottom, right, top = grid.bounds
    return shapely.box(left, bottom, right, top)


def rasterize_geometries(
    geometries: Sequence[BaseGeometry] | Array,
    grid: Grid,
    *,
    all_touched: bool = False,
) -> Array:
    """(H, W) bool: pixels of `grid` covered by any of the geometries.

    A pixel is covered when its centre is inside (GDAL's rule), or with `all_touched` when the
    polygon touches it at all (thin features such as tracks survive, areas grow). Geometries
    are clipped to the grid; parts outside it are simply not drawn.
    """
    shapes = np.asarray([g for g in geometries if g is not None and not g.is_empty], dtype=object)
    out = np.zeros(grid.shape, dtype=bool)
    if len(shapes):
        _burn(shapes, grid, Window(0, 0, grid.width, grid.height), out, all_touched=all_touched)
    return out


# GDAL's polygon fill visits every edge on every row: a polygon of 10^6 vertices over 2048 rows
# took 29 s. Above this many vertices a window is halved and the polygons clipped to each half,
# so each level of halving touches every vertex once and each leaf burns only its own part.
SPLIT_VERTICES = 20_000
MIN_SPLIT_PX = 16


def _burn(shapes: Array, grid: Grid, window: Window, out: Array, *, all_touched: bool) -> None:
    """Burn `shapes` into `out` (the whole grid's array) within `window`, halving heavy windows."""
    target = grid.window(window)
    rows = slice(int(window.row_off), int(window.row_off + window.height))
    cols = slice(int(window.col_off), int(window.col_off + window.width))
    height, width = int(window.height), int(window.width)
    north_up = grid.transform.b == 0 and grid.transform.d == 0
    heavy = int(shapely.get_num_coordinates(shapes).sum()) > SPLIT_VERTICES
    if not heavy or not north_up or max(height, width) <= MIN_SPLIT_PX:
        burnt = features.rasterize(
            ((g, 1) for g in shapes),
            out_shape=target.shape,
            transform=target.transform,
            fill=0,
            all_touched=all_touched,
            dtype="uint8",
        )
        out[rows, cols] |= burnt.astype(bool)
        return
    if height >= width:
        halves = [Window(window.col_off, window.row_off, width, height // 2)]
        halves.append(
            Window(window.col_off, window.row_off + height // 2, width, height - height // 2)
        )
    else:
        halves = [Window(window.col_off, window.row_off, width // 2, height)]
        halves.append(
            Window(window.col_off + width // 2, window.row_off, width - width // 2, height)
        )
    for half in halves:
        # A pixel of margin: every pixel of the half sees the polygons exactly as before, so
        # the centre rule and all_touched give the same pixels.
        left, bottom, right, top = grid.window(half).bounds
        margin = max(grid.resolution)
        clipped = shapely.clip_by_rect(
            shapes, left - margin, bottom - margin, right + margin, top + margin
        )
        clipped = clipped[~shapely.is_empty(clipped)]
        if len(clipped):
            _burn(clipped, grid, half, out, all_touched=all_touched)


def rasterize_classes(
    geometries: Sequence[BaseGeometry] | Array,
    class_indices: Sequence[int] | Array,
    grid: Grid,
    num_classes: int,
    *,
    all_touched: bool = False,
) -> Array:
    """(K, H, W) bool mask stack: plane k holds the geometries whose class index is k.

    Example:
        >>> from affine import Affine
        >>> grid = Grid(None, Affine.identity(), width=4, height=2)
        >>> mask = rasterize_classes([shapely.box(0, 0, 2, 2)], [1], grid, num_classes=2)
        >>> mask.shape, int(mask[0].sum()), int(mask[1].sum())
        ((2, 2, 4), 0, 4)
    """
    indices = np.asarray(class_indices, dtype=np.int64)
    items = np.asarray(geometries, dtype=object)
    mask = np.zeros((num_classes, *grid.shape), dtype=bool)
    for k in range(num_classes):
        chosen = items[indices == k]
        if chosen.size:
            mask[k] = rasterize_geometries(chosen, grid, all_touched=all_touched)
    return mask


@dataclass(frozen=True, eq=False)
class LabelRasterizer:
    """Polygons with class indices behind a spatial index, rasterized window by window.

    `geometries` are in the grid's CRS. `ignore_geometries` (unmapped raw values with
    `unmapped_values: ignore`) are burnt into the ignore plane instead of a class.
    """

    geometries: Array
    class_indices: Array
    num_classes: int
    ignore_geometries: Array
    all_touched: bool = False
    _tree: shapely.STRtree = field(init=False, repr=False)
    _ignore_tree: shapely.STRtree = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tree", shapely.STRtree(self.geometries))
        object.__setattr__(self, "_ignore_tree", shapely.STRtree(self.ignore_geometries))

    @classmethod
    def from_shapes(
        cls,
        geometries: Sequence[BaseGeometry] | Array,
        class_indices: Sequence[int] | Array,
        num_classes: int,
        *,
        ignore_geometries: Sequence[BaseGeometry] | Array = (),
        all_touched: bool = False,
    ) -> LabelRasterizer:
        return cls(
            geometries=np.asarray(list(geometries), dtype=object),
            class_indices=np.asarray(class_indices, dtype=np.int64),
            num_classes=num_classes,
            ignore_geometries=np.asarray(list(ignore_geometries), dtype=object),
            all_touched=all_touched,
        )

    def _query(self, tree: shapely.STRtree, box: BaseGeometry) -> Array:
        return np.asarray(tree.query(box, predicate="intersects"), dtype=np.int64)

    def rasterize(self, grid: Grid, window: Window | None = None) -> tuple[Array, Array]:
        """(mask (K, h, w) bool, ignore (h, w) bool) for `window` of `grid` (all of it if None).

        Only the polygons meeting the window are drawn; each is clipped to the window (plus a
        pixel, so that `all_touched` edges stay right) first, so a huge polygon crossing many
        windows costs each window only its own part.
        """
        target = grid.window(window) if window is not None else grid
        box = _window_box(target)
        margin = max(target.resolution)
        clip_box = shapely.buffer(box, margin, join_style="mitre")
        hits = self._query(self._tree, box)
        clipped = _clip_to(self.geometries[hits], clip_box)
        mask = rasterize_classes(
            clipped,
            self.class_indices[hits],
            target,
            self.num_classes,
            all_touched=self.all_touched,
        )
        ignore_hits = self._query(self._ignore_tree, box)
        ignore = rasterize_geometries(
            _clip_to(self.ignore_geometries[ignore_hits], clip_box),
            target,
            all_touched=self.all_touched,
        )
        return mask, ignore


def _clip_to(geometries: Array, box: BaseGeometry) -> Array:
    """Geometries reaching outside `box` cut to it; those inside (most) are left alone."""
    if geometries.size == 0:
        return geometries
    left, bottom, right, top = box.bounds
    bounds = shapely.bounds(geometries)
    outside = (
        (bounds[:, 0] < left)
        | (bounds[:, 1] < bottom)
        | (bounds[:, 2] > right)
        | (bounds[:, 3] > top)
    )
    if not outside.any():
        return geometries
    clipped = geometries.copy()
    clipped[outside] = shapely.intersection(geometries[outside], box)
    return clipped


def plan_label_windows(grid: Grid, window_px: int) -> Iterator[Window]:
    """Row-major windows of at most `window_px` x `window_px` that tile the grid exactly."""
    if window_px < 1:
        raise ValueError(f"window_px must be positive, got {window_px}")
    for row in range(0, grid.height, window_px):
        for col in range(0, grid.width, window_px):
            yield Window(
                col, row, min(window_px, grid.width - col), min(window_px, grid.height - row)
            )


def rasterize_windows(
    rasterizer: LabelRasterizer, grid: Grid, *, window_px: int = 1024
) -> Iterator[tuple[Window, Array, Array]]:
    """(window, mask, ignore) for every window of the grid, one at a time."""
    for window in plan_label_windows(grid, window_px):
        mask, ignore = rasterizer.rasterize(grid, window)
        yield window, mask, ignore


@dataclass(frozen=True, eq=False)
class ClassPixelIndex:
    """Where each class's pixels are, at block resolution, for class-balanced sampling.

    `counts[k, i, j]` is the number of class-k pixels in block (i, j), the pixels
    `[i * block_px, (i + 1) * block_px) x [j * block_px, (j + 1) * block_px)`. Memory is
    K x (H / block_px) x (W / block_px) int32: 10 classes over a 10000² scene at 32 px is 4 MB.
    """

    counts: Array
    block_px: int
    shape: tuple[int, int]

    @classmethod
    def empty(
        cls, num_classes: int, shape: tuple[int, int], *, block_px: int = 32
    ) -> ClassPixelIndex:
        rows = -(-shape[0] // block_px)
        cols = -(-shape[1] // block_px)
        return cls(np.zeros((num_classes, rows, cols), dtype=np.int32), block_px, shape)

    def add(self, window: Window, mask: Array, ignore: Array | None = None) -> None:
        """Count the (K, h, w) `mask` of `window` (pixels under `ignore` do not count)."""
        if ignore is not None:
            mask = mask & ~ignore[None]
        row_off, col_off = int(window.row_off), int(window.col_off)
        height, width = mask.shape[1:]
        block = self.block_px
        # Pad the window out to whole blocks, then sum each block (windows need not align).
        top, left = row_off % block, col_off % block
        rows = -(-(top + height) // block)
        cols = -(-(left + width) // block)
        padded = np.zeros((mask.shape[0], rows * block, cols * block), dtype=np.uint8)
        padded[:, top : top + height, left : left + width] = mask
        per_block = padded.reshape(mask.shape[0], rows, block, cols, block).sum(
            axis=(2, 4), dtype=np.int32
        )
        first_row, first_col = row_off // block, col_off // block
        target = self.counts[:, first_row : first_row + rows, first_col : first_col + cols]
        target += per_block[:, : target.shape[1], : target.shape[2]]

    @classmethod
    def from_mask(
        cls, mask: Array, *, ignore: Array | None = None, block_px: int = 32
    ) -> ClassPixelIndex:
        """The index of a mask already in memory."""
        index = cls.empty(mask.shape[0], (mask.shape[1], mask.shape[2]), block_px=block_px)
        index.add(Window(0, 0, mask.shape[2], mask.shape[1]), mask, ignore)
        return index

    @classmethod
    def from_windows(
        cls,
        windows: Iterable[tuple[Window, Array, Array]],
        num_classes: int,
        shape: tuple[int, int],
        *,
        block_px: int = 32,
    ) -> ClassPixelIndex:
        """Build the index from streamed (window, mask, ignore) triples."""
        index = cls.empty(num_classes, shape, block_px=block_px)
        for window, mask, ignore in windows:
            index.add(window, mask, ignore)
        return index

    @property
    def pixel_counts(self) -> Array:
        """(K,) int64: pixels of each class in the whole scene."""
        return np.asarray(self.counts.sum(axis=(1, 2), dtype=np.int64))

    def blocks(self, class_index: int) -> Array:
        """(N, 2) int: (row, col) pixel offsets of the blocks holding class `class_index`."""
        rows, cols = np.nonzero(self.counts[class_index])
        return np.stack([rows, cols], axis=1) * self.block_px

    def sample(self, class_index: int, rng: np.random.Generator, size: int) -> Array:
        """(size, 2) (row, col) pixel positions of blocks drawn in proportion to class pixels.

        Each position is a uniformly random pixel of the drawn block (clipped to the scene), so
        a patch centred on it contains class pixels with high probability; callers wanting
        certainty check the mask. Empty when the class is absent.
        """
        weights = self.counts[class_index].ravel().astype(np.float64)
        total = weights.sum()
        if total == 0 or size == 0:
            return np.zeros((0, 2), dtype=np.int64)
        flat = rng.choice(weights.size, size=size, p=weights / total)
        rows, cols = np.divmod(flat, self.counts.shape[2])
        offsets = rng.integers(0, self.block_px, size=(size, 2))
        positions = np.stack([rows, cols], axis=1) * self.block_px + offsets
        positions[:, 0] = np.minimum(positions[:, 0], self.shape[0] - 1)
        positions[:, 1] = np.minimum(positions[:, 1], self.shape[1] - 1)
        return positions.astype(np.int64)


def mask_to_polygons(mask2d: Array, grid: Grid) -> list[BaseGeometry]:
    """The connected regions of a (H, W) bool mask as polygons in the grid's coordinates.

    Edges follow pixel edges exactly (no simplification), so rasterizing the polygons again
    on the same grid gives the same mask. 4-connectivity: pixels touching only at a corner
    are separate polygons, which keeps every polygon valid.

    Example:
        >>> from affine import Affine
        >>> grid = Grid(None, Affine.identity(), width=3, height=3)
        >>> mask = np.zeros((3, 3), bool); mask[0:2, 0:2] = True
        >>> [p.area for p in mask_to_polygons(mask, grid)]
        [4.0]
    """
    if mask2d.shape != grid.shape:
        raise ValueError(f"mask {mask2d.shape} does not match grid {grid.shape}")
    binary = np.ascontiguousarray(mask2d, dtype=np.uint8)
    if not binary.any():
        return []
    return [
        shapely.geometry.shape(geometry)
        for geometry, _ in features.shapes(
            binary, mask=binary.astype(bool), connectivity=4, transform=grid.transform
        )
    ]
