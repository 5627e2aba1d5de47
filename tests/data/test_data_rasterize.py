"""Polygons -> class masks (whole grid or window by window), the class pixel index, and
the mask <-> polygon round trips."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio.windows import Window
from shapely.affinity import rotate

from spectraseg.data.rasterize import (
    ClassPixelIndex,
    LabelRasterizer,
    mask_to_polygons,
    plan_label_windows,
    rasterize_classes,
    rasterize_geometries,
    rasterize_windows,
)
from spectraseg.grid import Grid

PIXELS = Grid(None, Affine.identity(), width=48, height=40)


def iou(a: shapely.Geometry, b: shapely.Geometry) -> float:
    return float(a.intersection(b).area / a.union(b).area)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


@pytest.fixture
def layer() -> LabelRasterizer:
    """Three classes over PIXELS: overlapping squares (multi-label), a strip, an ignored blob."""
    return LabelRasterizer.from_shapes(
        [shapely.box(2, 2, 12, 12), shapely.box(8, 8, 20, 20), shapely.box(0, 30, 48, 33)],
        [0, 1, 2],
        num_classes=3,
        ignore_geometries=[shapely.box(40, 0, 48, 8)],
    )


def test_overlapping_classes_are_both_kept(layer):
    mask, ignore = layer.rasterize(PIXELS)
    assert mask.shape == (3, 40, 48)
    assert mask[0].sum() == 100 and mask[1].sum() == 144 and mask[2].sum() == 3 * 48
    assert (mask[0] & mask[1]).sum() == 16  # the 4 x 4 overlap belongs to both
    assert ignore.sum() == 64


def test_windows_put_together_equal_the_whole_grid(layer):
    whole, whole_ignore = layer.rasterize(PIXELS)
    stitched = np.zeros_like(whole)
    stitched_ignore = np.zeros_like(whole_ignore)
    for window, mask, ignore in rasterize_windows(layer, PIXELS, window_px=7):
        rows = slice(window.row_off, window.row_off + window.height)
        cols = slice(window.col_off, window.col_off + window.width)
        stitched[:, rows, cols] = mask
        stitched_ignore[rows, cols] = ignore
    assert np.array_equal(stitched, whole)
    assert np.array_equal(stitched_ignore, whole_ignore)


def test_all_touched_windows_also_match_the_whole_grid():
    diamond = shapely.Polygon([(10.3, 1.2), (19.7, 10.4), (10.1, 19.9), (0.6, 10.5)])
    layer = LabelRasterizer.from_shapes([diamond], [0], 1, all_touched=True)
    whole, _ = layer.rasterize(PIXELS)
    centres = rasterize_geometries([diamond], PIXELS)
    assert whole.sum() > centres.sum()
    for window, mask, _ in rasterize_windows(layer, PIXELS, window_px=5):
        rows = slice(window.row_off, window.row_off + window.height)
        cols = slice(window.col_off, window.col_off + window.width)
        assert np.array_equal(mask, whole[:, rows, cols])


def test_window_plan_tiles_any_shape_exactly():
    covered = np.zeros(PIXELS.shape, dtype=int)
    for window in plan_label_windows(PIXELS, 16):
        covered[window.toslices()] += 1
    assert (covered == 1).all()


def test_a_window_past_the_edge_is_empty_there(layer):
    mask, _ = layer.rasterize(PIXELS, Window(40, 32, 16, 16))
    assert mask.shape == (3, 16, 16)
    assert not mask[:, 8:, :].any()


def test_georeferenced_grids_use_their_transform():
    grid = Grid(None, Affine(10, 0, 1000, 0, -10, 2000), width=10, height=10)
    mask = rasterize_classes([shapely.box(1000, 1950, 1030, 2000)], [0], grid, num_classes=1)
    assert mask[0, :5, :3].all() and mask[0].sum() == 15


def test_class_pixel_index_counts_every_class_pixel_per_block(layer):
    mask, ignore = layer.rasterize(PIXELS)
    direct = ClassPixelIndex.from_mask(mask, ignore=ignore, block_px=8)
    assert direct.pixel_counts.tolist() == [100, 144, 144]
    streamed = ClassPixelIndex.from_windows(
        rasterize_windows(layer, PIXELS, window_px=11), 3, PIXELS.shape, block_px=8
    )
    assert np.array_equal(streamed.counts, direct.counts)
    assert direct.counts.shape == (3, 5, 6)
    assert direct.counts[0, 0, 0] == 36  # pixels 2..7 x 2..7 of the first square
    assert [tuple(b) for b in direct.blocks(2)] == [(24, c) for c in range(0, 48, 8)] + [
        (32, c) for c in range(0, 48, 8)
    ]


def test_class_pixel_index_samples_land_in_blocks_of_the_class(layer):
    mask, _ = layer.rasterize(PIXELS)
    index = ClassPixelIndex.from_mask(mask, block_px=4)
    positions = index.sample(0, np.random.default_rng(0), 200)
    assert positions.shape == (200, 2)
    near = [
        mask[0, r // 4 * 4 : r // 4 * 4 + 4, c // 4 * 4 : c // 4 * 4 + 4].any()
        for r, c in positions
    ]
    assert all(near)
    empty = ClassPixelIndex.empty(2, (10, 10), block_px=4)
    assert empty.sample(1, np.random.default_rng(0), 5).shape == (0, 2)


def test_mask_to_polygons_to_mask_is_exact():
    rng = np.random.default_rng(3)
    grid = Grid(None, Affine(0.5, 0, 100, 0, -0.5, 50), width=64, height=48)
    from scipy import ndimage

    blobs = ndimage.gaussian_filter(rng.standard_normal(grid.shape), 3) > 0.05
    polygons = mask_to_polygons(blobs, grid)
    assert len(polygons) > 1
    back = rasterize_geometries(polygons, grid)
    assert mask_iou(back, blobs) >= 0.999
    assert np.array_equal(back, blobs)  # unsimplified, it is in fact exact


def test_pixel_aligned_polygons_survive_rasterize_and_vectorize():
    # Rectilinear objects at least 8 px wide on pixel edges (buildings, fields of the sample).
    objects = {
        0: [shapely.box(2, 2, 10, 12), shapely.box(30, 5, 45, 13)],
        1: [shapely.Polygon([(5, 20), (25, 20), (25, 28), (13, 28), (13, 36), (5, 36)])],
    }
    for class_index, polygons in objects.items():
        mask = rasterize_geometries(polygons, PIXELS)
        back = shapely.union_all(mask_to_polygons(mask, PIXELS))
        assert iou(back, shapely.union_all(polygons)) >= 0.98, class_index


def shapes_of_width(width: float, rng: np.random.Generator, size: int) -> shapely.Geometry:
    """Rotated rectangles, discs and triangles whose narrowest extent is `width` px."""
    shapes = []
    for i in range(max(3, int(160 / width))):
        cx, cy = rng.uniform(1.5 * width, size - 1.5 * width, 2)
        if i % 3 == 0:
            shape = shapely.box(cx - width / 2, cy - width, cx + width / 2, cy + width)
        elif i % 3 == 1:
            shape = shapely.Point(cx, cy).buffer(width / 2, 16)
        else:
            shape = shapely.Polygon(
                [
                    (cx - width / 2, cy - width / 2),
                    (cx + width / 2, cy - width / 2),
                    (cx, cy + width),
                ]
            )
        shapes.append(rotate(shape, rng.uniform(0, 180), origin="centroid"))
    return shapely.union_all(shapes)


@pytest.mark.parametrize("width", [8, 16, 32, 64])
def test_any_polygon_survives_rasterize_and_vectorize_up_to_its_pixel_staircase(width):
    # Arbitrary shapes lose their sub-pixel edges: IoU ~ 1 - 0.85 / width (measured), so the
    # 0.98 bound holds for shapes from 64 px wide; narrower ones get 1 - 1 / width.
    size = 320
    grid = Grid(None, Affine.identity(), width=size, height=size)
    truth = shapes_of_width(width, np.random.default_rng(width), size)
    back = shapely.union_all(mask_to_polygons(rasterize_geometries([truth], grid), grid))
    bound = 0.98 if width >= 64 else 1 - 1 / width
    assert iou(back, truth) >= bound


def test_an_empty_mask_has_no_polygons():
    assert mask_to_polygons(np.zeros(PIXELS.shape, dtype=bool), PIXELS) == []


@pytest.mark.parametrize("all_touched", [False, True])
def test_heavy_polygons_split_into_halves_burn_the_same_pixels(
    all_touched: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Halving the grid for polygons with many vertices is invisible in the result."""
    from rasterio import features

    from spectraseg.data import rasterize

    angles = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
    radius = 30 + 6 * np.sin(angles * 97)  # a ragged ring: edges cross every row many times
    ring = np.column_stack([50.3 + radius * np.cos(angles), 35.7 + radius * np.sin(angles)])
    shapes = [shapely.Polygon(ring).buffer(0), shapely.box(2.5, 3.5, 20.2, 9.9)]
    grid = Grid(None, Affine(1.0, 0, 0.25, 0, 1.0, -0.5), width=97, height=71)
    whole = features.rasterize(
        ((g, 1) for g in shapes),
        out_shape=grid.shape,
        transform=grid.transform,
        all_touched=all_touched,
        dtype="uint8",
    ).astype(bool)
    monkeypatch.setattr(rasterize, "SPLIT_VERTICES", 50)
    monkeypatch.setattr(rasterize, "MIN_SPLIT_PX", 4)
    split = rasterize_geometries(shapes, grid, all_touched=all_touched)
    assert whole.sum() > 1000
    assert np.array_equal(split, whole)
