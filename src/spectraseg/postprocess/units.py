"""Lengths and areas in metres turned into pixels of a grid, whatever its CRS.

Post-processing settings are given in the units a user thinks in (a 5 m buffer around roads,
objects under 20 m²), but every operation works on pixels. On a projected CRS the conversion
is the CRS's own unit (metres, or feet times 0.3048); on a geographic CRS (EPSG:4326) a degree
has no fixed length, so the pixel is measured in the local UTM zone at the centre of the grid,
which is exact to a fraction of a percent over a scene. A grid without CRS cannot be measured
in metres at all: that is an error telling the user to give the setting in pixels.
"""

from __future__ import annotations

import math

from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.warp import transform as transform_points

from spectraseg.errors import ConfigError
from spectraseg.grid import Grid

WGS84 = CRS.from_epsg(4326)


def local_utm_crs(longitude: float, latitude: float) -> CRS:
    """The WGS84 UTM zone holding a point (EPSG:326xx north, 327xx south).

    Example:
        >>> local_utm_crs(13.5, 52.5).to_epsg()
        32633
        >>> local_utm_crs(-115.2, -36.1).to_epsg()
        32711
    """
    zone = math.floor((longitude + 180.0) / 6.0) % 60 + 1
    return CRS.from_epsg((32600 if latitude >= 0 else 32700) + zone)


def _require_crs(grid: Grid, what: str) -> CRS:
    if grid.crs is None:
        raise ConfigError(
            f"{what} is in metres but the raster has no CRS (pixel coordinates); "
            "give it in pixels instead (the *_px setting)."
        )
    return grid.crs


def pixel_size_m(grid: Grid, *, what: str = "a setting") -> tuple[float, float]:
    """(x, y) ground size of one pixel in metres.

    Args:
        what: names the setting in the error raised when the grid has no CRS.

    Example:
        >>> from affine import Affine
        >>> utm = Grid(CRS.from_epsg(32633), Affine(10, 0, 330000, 0, -10, 5822040), 4, 4)
        >>> pixel_size_m(utm)
        (10.0, 10.0)
    """
    crs = _require_crs(grid, what)
    x_size, y_size = grid.resolution
    if not crs.is_geographic:
        try:
            _, factor = crs.linear_units_factor
        except CRSError:  # a CRS without a linear unit (an engineering CRS, say)
            raise ConfigError(
                f"{what} is in metres but the raster's CRS {crs.to_string()} has no linear unit; "
                "give it in pixels instead."
            ) from None
        return (x_size * factor, y_size * factor)
    # Geographic: measure one pixel at the grid centre in the local UTM zone.
    centre_col, centre_row = grid.width / 2.0, grid.height / 2.0
    points = [(centre_col, centre_row), (centre_col + 1, centre_row), (centre_col, centre_row + 1)]
    xs, ys = zip(*(grid.transform @ point for point in points), strict=True)
    longitudes, latitudes = transform_points(crs, WGS84, list(xs), list(ys))
    utm = local_utm_crs(longitudes[0], latitudes[0])
    eastings, northings = transform_points(crs, utm, list(xs), list(ys))
    x_m = math.hypot(eastings[1] - eastings[0], northings[1] - northings[0])
    y_m = math.hypot(eastings[2] - eastings[0], northings[2] - northings[0])
    return (x_m, y_m)


def pixel_area_m2(grid: Grid, *, what: str = "a setting") -> float:
    """Ground area of one pixel in square metres."""
    x_m, y_m = pixel_size_m(grid, what=what)
    return x_m * y_m


def metres_to_pixels(length_m: float, grid: Grid, *, what: str = "a setting") -> float:
    """A length in metres as a number of pixels (the mean of the x and y pixel sizes).

    Example:
        >>> from affine import Affine
        >>> grid = Grid(CRS.from_epsg(32633), Affine(0.5, 0, 0, 0, -0.5, 0), 4, 4)
        >>> metres_to_pixels(5.0, grid)
        10.0
    """
    x_m, y_m = pixel_size_m(grid, what=what)
    return length_m / ((x_m + y_m) / 2.0)


def square_metres_to_pixels(area_m2: float, grid: Grid, *, what: str = "a setting") -> float:
    """An area in square metres as a number of pixels."""
    return area_m2 / pixel_area_m2(grid, what=what)
