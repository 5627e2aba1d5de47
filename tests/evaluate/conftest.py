"""The hand-computed two-scene example on disk: predictions, truth rasters, classes.yaml."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from spectraseg.grid import Grid
from spectraseg.io.geotiff import write_raster

NAMES = ("building", "water", "road")
CLASSES_YAML = """classes:
  - {name: building, id: 1}
  - {name: water, id: 2}
  - {name: road, id: 3}
ignore_value: 255
"""


def grid_at(col: int = 0, height: int = 2, width: int = 4, crs: CRS | None = None) -> Grid:
    """A 2 m UTM grid (or pixel grid when crs is None and col < 0)."""
    return Grid(
        crs or CRS.from_epsg(32633),
        Affine(2.0, 0, 330000.0 + 2 * col, 0, -2.0, 5822040.0),
        width,
        height,
    )


def write_mask_prediction(
    path: Path, mask: np.ndarray, grid: Grid, names: Sequence[str] = NAMES
) -> Path:
    tags = {
        "SPECTRASEG_KIND": "mask",
        "SPECTRASEG_CLASSES": json.dumps(list(names)),
        "SPECTRASEG_HEAD": "sigmoid",
    }
    write_raster(path, mask.astype(np.uint8), grid, band_names=list(names), nodata=255, tags=tags)
    return path


def write_probabilities(
    path: Path, probs: np.ndarray, grid: Grid, names: Sequence[str] | None = NAMES, **extra: str
) -> Path:
    tags = {"SPECTRASEG_KIND": "probabilities", **extra}
    if names is not None:
        tags["SPECTRASEG_CLASSES"] = json.dumps(list(names))
    write_raster(
        path,
        probs.astype(np.float32),
        grid,
        band_names=list(names) if names is not None else None,
        nodata=float("nan"),
        tags=tags,
    )
    return path


def write_truth(path: Path, ids: np.ndarray, grid: Grid) -> Path:
    write_raster(path, ids.astype(np.uint8), grid, band_names=["class_id"])
    return path


def write_yes_buildings(path: Path) -> Path:
    """SpaceNet's way: one polygon tagged `building: yes` over columns 0-1 of row 0 of
    `grid_at(0)`, and no classes.yaml."""
    left, top = 330000.0, 5822040.0
    square = [[left, top], [left + 4, top], [left + 4, top - 2], [left, top - 2], [left, top]]
    feature = {
        "type": "Feature",
        "properties": {"building": "yes"},
        "geometry": {"type": "Polygon", "coordinates": [square]},
    }
    crs = {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "FeatureCollection", "crs": crs, "features": [feature]}))
    return path


A_PRED = np.array(
    [[[1, 0, 1, 1], [0, 0, 0, 0]], [[0, 0, 0, 0], [1, 1, 1, 0]], [[0] * 4] * 2], dtype=bool
)
B_PRED = np.array([[[0, 0, 0, 0], [0, 0, 0, 1]], [[0] * 4] * 2, [[0] * 4] * 2], dtype=bool)
A_TRUTH_IDS = np.array([[1, 1, 0, 255], [2, 2, 0, 255]])
B_TRUTH_IDS = np.array([[2, 2, 2, 2], [0, 0, 0, 0]])
HAND_MEAN_JACCARD = (1 / 4 + 2 / 7) / 2


class Files:
    """The helpers above, for tests (conftest modules are not imported by tests directly)."""

    grid_at = staticmethod(grid_at)
    write_mask_prediction = staticmethod(write_mask_prediction)
    write_probabilities = staticmethod(write_probabilities)
    write_truth = staticmethod(write_truth)
    write_yes_buildings = staticmethod(write_yes_buildings)
    A_PRED = A_PRED
    A_TRUTH_IDS = A_TRUTH_IDS
    HAND_MEAN_JACCARD = HAND_MEAN_JACCARD


@pytest.fixture
def files() -> type[Files]:
    """Writers for prediction and truth rasters, and the example's arrays."""
    return Files


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """root/{classes.yaml, truth/a.tif, truth/b.tif, pred/a_mask.tif, pred/a_probs.tif,
    pred/b_mask.tif}: the example of test_evaluate_scores.py; returns root.

    a_probs.tif predicts nothing: scoring it instead of a_mask.tif would change the result.
    """
    (tmp_path / "classes.yaml").write_text(CLASSES_YAML)
    write_truth(tmp_path / "truth" / "a.tif", A_TRUTH_IDS, grid_at(0))
    write_truth(tmp_path / "truth" / "b.tif", B_TRUTH_IDS, grid_at(10))
    write_mask_prediction(tmp_path / "pred" / "a_mask.tif", A_PRED, grid_at(0))
    write_probabilities(tmp_path / "pred" / "a_probs.tif", np.zeros((3, 2, 4)), grid_at(0))
    write_mask_prediction(tmp_path / "pred" / "b_mask.tif", B_PRED, grid_at(10))
    return tmp_path
