"""Co-registration recovers known sub-pixel shifts between the files of a scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS
from scipy import ndimage

from spectraseg.grid import Grid
from spectraseg.io.coregister import estimate_shift, estimate_stack_shifts
from spectraseg.io.geotiff import write_raster
from spectraseg.io.rasters import open_stack
from spectraseg.sample import generate_scene


@pytest.mark.parametrize("shift", [(1.3, -2.7), (0.25, 0.4), (-3.6, 5.1)])
def test_phase_correlation_recovers_a_subpixel_shift(shift: tuple[float, float]) -> None:
    image = generate_scene(0, 256).image[5].astype(np.float64)
    moved = ndimage.shift(image, shift, order=3, mode="nearest")
    estimated = estimate_shift(image, moved)
    assert np.allclose(estimated, shift, atol=0.2)


def test_a_shifted_sensor_file_is_found_and_corrected(tmp_path: Path) -> None:
    scene = generate_scene(3, 256)
    grid = Grid(CRS.from_epsg(32633), Affine(2, 0, 0, 0, -2, 512), 256, 256)
    write_raster(tmp_path / "x_rgb.tif", scene.image[1:4], grid, band_names=["b", "g", "r"])
    shifted = ndimage.shift(scene.image[[3, 5]], (0, 1.6, -0.8), order=3, mode="nearest")
    write_raster(tmp_path / "x_ms.tif", shifted, grid, band_names=["red_ms", "nir"])
    files = [tmp_path / "x_rgb.tif", tmp_path / "x_ms.tif"]
    shared_band = {"x_rgb.tif": "r", "x_ms.tif": "red_ms"}
    shifts = estimate_stack_shifts(files, reference=files[0], bands=shared_band)
    assert np.allclose(shifts["x_ms.tif"], (1.6, -0.8), atol=0.2)
    with open_stack(files, shifts_px=shifts, resampling="cubic") as stack:
        image, _ = stack.read()
    error_before = np.abs(shifted[1] - scene.image[5])[16:-16, 16:-16].mean()
    error_after = np.abs(image[4] - scene.image[5])[16:-16, 16:-16].mean()
    assert error_after < error_before / 3
