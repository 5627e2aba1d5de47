"""Prediction rasters as `spectraseg predict` writes them, made from small arrays."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from spectraseg.grid import Grid
from spectraseg.io.geotiff import write_raster

PredictionFactory = Callable[..., Path]


def utm_grid(height: int, width: int, pixel_m: float = 2.0) -> Grid:
    """A north-up UTM 33N grid of `height` x `width` pixels of `pixel_m` metres."""
    transform = Affine(pixel_m, 0, 330000.0, 0, -pixel_m, 5822040.0)
    return Grid(CRS.from_epsg(32633), transform, width, height)


def _write(
    path: Path,
    data: np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    kind: str = "probabilities",
    grid: Grid | None = None,
    thresholds: Sequence[float] | None = None,
    head: str = "sigmoid",
    descriptions: bool = True,
    tags: bool = True,
) -> Path:
    grid = grid or utm_grid(data.shape[-2], data.shape[-1])
    names = list(class_names or [f"class_{k}" for k in range(data.shape[0])])
    written_tags: dict[str, str] = {}
    if tags:
        written_tags = {
            "SPECTRASEG_KIND": kind,
            "SPECTRASEG_CLASSES": json.dumps(names),
            "SPECTRASEG_HEAD": head,
        }
        if thresholds is not None:
            written_tags["SPECTRASEG_THRESHOLDS"] = json.dumps(list(thresholds))
    if kind == "probabilities":
        array, nodata = data.astype(np.float32), float("nan")
    else:
        array, nodata = data.astype(np.uint8), 255.0
    band_names = names if descriptions and array.shape[0] == len(names) else None
    write_raster(path, array, grid, band_names=band_names, nodata=nodata, tags=written_tags)
    return path


@pytest.fixture
def write_prediction() -> PredictionFactory:
    """write_prediction(path, data (K|1, H, W), *, class_names, kind, grid, thresholds, head,
    descriptions, tags) -> path: a prediction raster with predict's tags."""
    return _write


@pytest.fixture
def blobs() -> Callable[..., np.ndarray]:
    """blobs(num_classes, height, width, seed=0, sigma=3.0) -> (K, H, W) bool random shapes."""
    from scipy import ndimage

    def make(
        num_classes: int, height: int, width: int, seed: int = 0, sigma: float = 3.0
    ) -> np.ndarray:
        rng = np.random.default_rng(seed)
        noise = ndimage.gaussian_filter(rng.random((num_classes, height, width)), (0, sigma, sigma))
        return np.asarray(noise > np.median(noise) + 0.01)

    return make


@pytest.fixture
def grid_of() -> Callable[..., Grid]:
    """grid_of(height, width, pixel_m=2.0) -> a UTM grid."""
    return utm_grid
