"""No seams: with a trained model, window borders do not show in the blended probabilities.

A seam is a jump in probability from one pixel to the next where one window's prediction
hands over to another's. The measure: the mean absolute jump across the rows and columns
where windows start or end, against the median jump across all other rows and columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from spectraseg.config import load_config
from spectraseg.predict.load_model import LoadedModel, load_model
from spectraseg.predict.raster import PredictSettings, predict_raster
from spectraseg.predict.tiling import TilingSettings, plan_windows
from spectraseg.sample import generate_sample
from spectraseg.workflow.training import train_model

pytestmark = pytest.mark.slow

WINDOW = 32


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedModel, Path]:
    """A small U-Net trained briefly on the built-in sample, and a scene to predict."""
    root = tmp_path_factory.mktemp("seams")
    data = generate_sample(root / "data", scenes=3, size=128, seed=0)
    config = load_config(
        None,
        [
            "train.epochs=6",
            "train.patches_per_epoch=64",
            "train.num_workers=0",
            "model.unet.depth=3",
            "model.unet.base_filters=8",
            "data.patch_size=64",
        ],
    )
    train_model(config, data_dir=data, out_dir=root / "run")
    return load_model(root / "run", torch.device("cpu")), sorted((data / "images").iterdir())[0]


def seam_ratio(probs: np.ndarray, tiling: TilingSettings) -> float:
    """Mean jump across window borders / median jump across other rows and columns."""
    _, height, width = probs.shape
    plan = plan_windows(height, width, tiling)
    border_jumps, inside = [], []
    for axis, starts, length in ((1, plan.row_starts, height), (2, plan.col_starts, width)):
        # jumps[i]: mean |p[i + 1] - p[i]| over the other axis and the classes.
        other = (0, 2) if axis == 1 else (0, 1)
        jumps = np.abs(np.diff(probs, axis=axis)).mean(axis=other)
        borders = {
            edge for start in starts for edge in (start, start + WINDOW) if 0 < edge < length
        }
        border_jumps.extend(jumps[edge - 1] for edge in borders)
        inside.extend(jumps[i] for i in range(length - 1) if i + 1 not in borders)
    return float(np.mean(border_jumps) / np.median(inside))


def _predict(trained, tmp_path: Path, window_function: str) -> tuple[np.ndarray, TilingSettings]:
    model, scene = trained
    tiling = TilingSettings(window_px=WINDOW, overlap=0.5)
    settings = PredictSettings(tiling=tiling, tta=8, window_function=window_function)
    outputs = predict_raster(
        model.predictor, scene, tmp_path / window_function, settings=settings, info=model.info
    )
    with rasterio.open(outputs.probabilities) as dataset:
        return dataset.read(), tiling


def test_spline_blending_leaves_no_seams_at_window_borders(trained, tmp_path):
    probs, tiling = _predict(trained, tmp_path, "spline")
    assert seam_ratio(probs, tiling) <= 1.1


def test_the_seam_measure_sees_the_seams_of_flat_averaging(trained, tmp_path):
    spline, tiling = _predict(trained, tmp_path, "spline")
    flat, _ = _predict(trained, tmp_path, "flat")
    assert seam_ratio(flat, tiling) > seam_ratio(spline, tiling)
