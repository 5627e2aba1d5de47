"""Metres on any CRS: projected units, geographic through the local UTM zone, none refused."""

from __future__ import annotations

import pytest
from affine import Affine
from rasterio.crs import CRS

from spectraseg.errors import ConfigError
from spectraseg.grid import Grid
from spectraseg.postprocess.units import (
    local_utm_crs,
    metres_to_pixels,
    pixel_area_m2,
    pixel_size_m,
)


def test_a_utm_pixel_is_its_resolution() -> None:
    grid = Grid(CRS.from_epsg(32633), Affine(10, 0, 330000, 0, -10, 5822040), 8, 8)
    assert pixel_size_m(grid) == (10.0, 10.0)
    assert pixel_area_m2(grid) == 100.0


def test_feet_are_converted_to_metres() -> None:
    grid = Grid(CRS.from_epsg(2263), Affine(1, 0, 1e6, 0, -1, 2e5), 8, 8)  # NY, US feet
    x_m, _ = pixel_size_m(grid)
    assert x_m == pytest.approx(0.3048, rel=1e-4)


def test_a_degree_pixel_is_measured_in_the_local_utm_zone() -> None:
    # The SpaceNet road chip's grid: 2.7e-6 degree pixels at 36.1 N, about 0.24 x 0.30 m.
    grid = Grid(CRS.from_epsg(4326), Affine(2.7e-6, 0, -115.2338, 0, -2.7e-6, 36.1423), 1300, 1300)
    x_m, y_m = pixel_size_m(grid)
    assert x_m == pytest.approx(2.7e-6 * 111320 * 0.8078, rel=0.01)
    assert y_m == pytest.approx(0.2997, rel=0.01)
    assert metres_to_pixels(5.0, grid) == pytest.approx(5.0 / ((x_m + y_m) / 2))


def test_utm_zones_north_and_south() -> None:
    assert local_utm_crs(-115.2, 36.1).to_epsg() == 32611
    assert local_utm_crs(151.2, -33.9).to_epsg() == 32756
    assert local_utm_crs(179.99, 0.0).to_epsg() == 32660


def test_metres_without_a_crs_ask_for_pixels() -> None:
    grid = Grid(None, Affine.identity(), 8, 8)
    with pytest.raises(ConfigError, match=r"buffer_m is in metres .* give it in pixels"):
        metres_to_pixels(5.0, grid, what="buffer_m")
