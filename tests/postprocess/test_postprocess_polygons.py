"""Masks -> polygons: exact, valid, holes kept, the same strip by strip, placed and rounded."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import shapely
from affine import Affine

from spectraseg.data.rasterize import rasterize_geometries
from spectraseg.grid import Grid
from spectraseg.postprocess.placement import (
    Placement,
    dstl_class_geometries,
    finish_geometries,
    rounding_decimals,
)
from spectraseg.postprocess.polygons import PolygonSettings, vectorize_masks

Blobs = Callable[..., np.ndarray]


def pixel_grid(height: int, width: int) -> Grid:
    return Grid(None, Affine.identity(), width, height)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_unsimplified_polygons_rasterize_back_to_the_same_mask(blobs: Blobs) -> None:
    mask = blobs(2, 40, 50, seed=1)
    objects = vectorize_masks(mask, settings=PolygonSettings(simplify_px=0))
    for k in range(2):
        drawn = rasterize_geometries(
            [o.geometry for o in objects if o.class_index == k], pixel_grid(40, 50)
        )
        assert np.array_equal(drawn, mask[k])


def test_default_simplification_keeps_iou_above_098(blobs: Blobs) -> None:
    mask = blobs(1, 128, 128, seed=2, sigma=4.0)
    objects = vectorize_masks(mask)
    drawn = rasterize_geometries([o.geometry for o in objects], pixel_grid(128, 128))
    assert iou(drawn, mask[0]) >= 0.98
    exact = vectorize_masks(mask, settings=PolygonSettings(simplify_px=0))
    vertices = sum(len(shapely.get_coordinates(o.geometry)) for o in objects)
    assert vertices < sum(len(shapely.get_coordinates(o.geometry)) for o in exact)


def test_holes_are_kept() -> None:
    mask = np.zeros((1, 7, 7), bool)
    mask[0, 1:6, 1:6] = True
    mask[0, 3, 3] = False
    (ring,) = vectorize_masks(mask, settings=PolygonSettings(simplify_px=0))
    assert len(ring.geometry.interiors) == 1
    assert ring.geometry.area == 24 and ring.pixels == 24


def test_every_polygon_is_valid_even_with_corner_touching_holes(blobs: Blobs) -> None:
    mask = np.ones((1, 6, 6), bool)
    mask[0, 1, 1] = mask[0, 2, 2] = mask[0, 3, 4] = False  # holes touching at corners
    noisy = blobs(1, 64, 64, seed=5, sigma=0.7)
    for data in (mask, noisy):
        for tolerance in (0.0, 0.5, 1.5, 3.0):
            objects = vectorize_masks(data, settings=PolygonSettings(simplify_px=tolerance))
            assert all(o.geometry.is_valid and not o.geometry.is_empty for o in objects)


@pytest.mark.parametrize("strip_rows", [1, 2, 5, 16])
def test_strip_by_strip_equals_the_whole_mask(blobs: Blobs, strip_rows: int) -> None:
    mask = blobs(2, 37, 29, seed=strip_rows, sigma=2.0)
    probs = np.random.default_rng(0).random(mask.shape).astype(np.float32)
    whole = vectorize_masks(mask, probs=probs)
    strips = vectorize_masks(mask, probs=probs, settings=PolygonSettings(strip_rows=strip_rows))
    assert len(strips) == len(whole) > 3
    for a, b in zip(whole, strips, strict=True):
        assert (a.class_index, a.pixels) == (b.class_index, b.pixels)
        assert a.mean_prob == pytest.approx(b.mean_prob, rel=1e-9)
        assert shapely.equals_exact(a.geometry, b.geometry, tolerance=0)


def test_an_object_spanning_every_strip_is_one_polygon() -> None:
    mask = np.zeros((1, 30, 10), bool)
    mask[0, :, 4] = True  # a vertical line through 30 one-row strips
    mask[0, 10:20, 2:8] = True
    (item,) = vectorize_masks(mask, settings=PolygonSettings(strip_rows=1, simplify_px=0))
    assert item.pixels == 30 + 10 * 6 - 10


def test_mean_probability_is_over_the_object_pixels() -> None:
    mask = np.zeros((1, 4, 4), bool)
    mask[0, 0, :2] = True
    probs = np.zeros((1, 4, 4), np.float32)
    probs[0, 0, :2] = [0.6, 0.8]
    (item,) = vectorize_masks(mask, probs=probs)
    assert item.mean_prob == pytest.approx(0.7)
    (without,) = vectorize_masks(mask)
    assert np.isnan(without.mean_prob)


def test_placing_on_a_grid_maps_pixels_to_coordinates(grid_of: Callable[..., Grid]) -> None:
    grid = grid_of(4, 4, pixel_m=2.0)
    placement = Placement.for_grid(grid)
    decimals = placement.decimals(4, 4)
    placed, kept = placement.place([shapely.box(0, 0, 1, 1)], decimals)
    assert kept.all() and decimals == 2
    assert placed[0].bounds == (330000.0, 5822038.0, 330002.0, 5822040.0)


def test_rounding_repairs_what_it_would_break() -> None:
    # A sliver narrower than the rounding grid collapses: it is dropped, never written invalid.
    sliver = shapely.Polygon([(0, 0), (1, 0.001), (2, 0), (1, 0.002)])
    bowtie_after_rounding = shapely.Polygon([(0, 0), (1, 0.004), (2, 0), (2, 1), (0, 1)])
    final, kept = finish_geometries(np.array([sliver, bowtie_after_rounding], dtype=object), 2)
    assert kept.tolist() == [False, True]
    assert all(g.is_valid for g in final)


def test_rounding_keeps_a_hundredth_of_a_pixel() -> None:
    assert rounding_decimals(10.0) == 1
    assert rounding_decimals(1.0) == 2
    assert rounding_decimals(2.7e-6) == 8


def test_dstl_geometries_are_one_valid_multipolygon_per_class() -> None:
    mask = np.zeros((2, 20, 20), bool)
    mask[0, 2:6, 2:6] = True
    mask[0, 6:9, 6:9] = True  # touches the first square at a corner
    objects = vectorize_masks(mask, settings=PolygonSettings(simplify_px=1.0))
    geometries, decimals = dstl_class_geometries(
        objects, 2, pixel_grid(20, 20), xmax=0.009, ymin=-0.009
    )
    assert geometries[0].geom_type == "MultiPolygon" and geometries[0].is_valid
    assert geometries[1].is_empty
    assert decimals == 6  # a pixel is 0.009 / 20 * 20/21 wide: 1/100 of it needs 6 decimals
