"""Tiny rasters and models for the prediction tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from affine import Affine
from rasterio.crs import CRS

from spectraseg.data.augment import tta_transforms
from spectraseg.grid import Grid
from spectraseg.io.geotiff import write_raster
from spectraseg.predict.blending import window_2d
from spectraseg.predict.settings import PredictSettings
from spectraseg.predict.tiling import plan_windows, reflect_indices
from spectraseg.predict.tta import predict_with_tta

RasterFactory = Callable[..., Path]
Model = Callable[[torch.Tensor], torch.Tensor]
ModelFactory = Callable[..., Model]


def _pointwise_model(in_channels: int, num_classes: int, seed: int = 0) -> Model:
    """A 1x1 convolution + sigmoid: each output pixel depends only on the same input pixel."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(num_classes, in_channels, 1, 1, generator=generator)
    bias = torch.randn(num_classes, generator=generator)
    return lambda x: torch.sigmoid(torch.nn.functional.conv2d(x, weight, bias))


def _conv3x3_model(in_channels: int, num_classes: int, seed: int = 0) -> Model:
    """A zero-padded 3x3 convolution + sigmoid: wrong on each window's outermost pixels."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(num_classes, in_channels, 3, 3, generator=generator)
    return lambda x: torch.sigmoid(torch.nn.functional.conv2d(x, weight, padding=1))


@pytest.fixture
def pointwise() -> ModelFactory:
    """pointwise(in_channels, num_classes, seed=0): a 1x1 convolution + sigmoid."""
    return _pointwise_model


@pytest.fixture
def conv3x3() -> ModelFactory:
    """conv3x3(in_channels, num_classes, seed=0): a zero-padded 3x3 convolution + sigmoid."""
    return _conv3x3_model


@pytest.fixture
def make_raster(tmp_path: Path) -> RasterFactory:
    """Write a small georeferenced GeoTIFF of random bands; returns its path."""

    def make(
        height: int = 37,
        width: int = 53,
        band_names: Sequence[str] | None = ("blue", "green", "red"),
        *,
        count: int | None = None,
        name: str = "scene.tif",
        holes: bool = False,
        pixel_size: float = 10.0,
        seed: int = 0,
    ) -> Path:
        bands = count if count is not None else len(band_names or ())
        image = np.random.default_rng(seed).random((bands, height, width)).astype(np.float32)
        nodata = None
        if holes:
            image[:, 3:9, 5:20] = -9999.0
            image[:, -4:, -6:] = -9999.0
            nodata = -9999.0
        grid = Grid(
            crs=CRS.from_epsg(32631),
            transform=Affine(pixel_size, 0.0, 500000.0, 0.0, -pixel_size, 5000000.0),
            width=width,
            height=height,
        )
        path = tmp_path / name
        write_raster(path, image, grid, band_names=band_names, nodata=nodata, overwrite=True)
        return path

    return make


CheckpointFactory = Callable[..., Path]


@pytest.fixture
def make_checkpoint(tmp_path: Path) -> CheckpointFactory:
    """Write a tiny untrained checkpoint (U-Net or random forest) for three bands, two classes."""
    from spectraseg.models.card import PER_PIXEL_MODELS, ModelCard
    from spectraseg.train.checkpoint import Checkpoint, save_checkpoint

    def make(
        model_name: str = "unet",
        *,
        band_names: Sequence[str] = ("blue", "green", "red"),
        class_names: Sequence[str] = ("building", "water"),
        class_ids: Sequence[int] | None = None,
        head: str = "sigmoid",
        name: str = "model.pt",
        seed: int = 0,
        tta_jaccard: dict[int, float] | None = None,
    ) -> Path:
        bands, classes = len(band_names), len(class_names)
        ids = class_ids or range(1, classes + 1)
        if model_name == "unet":
            from spectraseg.models.registry import build_model

            torch.manual_seed(seed)
            settings = {"depth": 3, "base_filters": 4, "head": head}
            weights = build_model("unet", bands, classes, settings).state_dict()
        else:
            from spectraseg.train.forest import ForestSettings, fit_forest

            settings = {}
            rng = np.random.default_rng(seed)
            image = rng.random((bands, 16, 16)).astype(np.float32)
            mask = np.stack([image[0] > 0.5, image[1] > 0.3])[:classes]
            forest = fit_forest(
                [image],
                [mask],
                [np.zeros((16, 16), dtype=bool)],
                ForestSettings(trees=2, max_depth=4, n_jobs=1),
            )
            weights = {k: torch.from_numpy(v) for k, v in forest.to_arrays().items()}
        stats = {
            "band_names": list(band_names),
            "mean": [0.5] * bands,
            "std": [0.3] * bands,
            "low": [0.0] * bands,
            "high": [1.0] * bands,
        }
        card = ModelCard.model_validate(
            {
                "model": model_name,
                "model_settings": settings,
                "band_names": tuple(band_names),
                "normalization": {"method": "standard", "stats": stats},
                "classes": [
                    {"name": n, "id": i, "colour": (200, 0, 0)}
                    for n, i in zip(class_names, ids, strict=True)
                ],
                "head": head,
                "thresholds": (0.5,) * classes,
                "resolution": (10.0, 10.0),
                "patch_px": 16,
                "size_multiple": 1 << int(settings.get("depth", 5)) if model_name == "unet" else 1,
                "per_pixel": model_name in PER_PIXEL_MODELS,
                "tta_jaccard": tta_jaccard,
            }
        )
        checkpoint = Checkpoint(
            card=card,
            epoch=1,
            best_score=0.0,
            seed=seed,
            versions={},
            git_commit=None,
            config={},
            weights=weights,
        )
        path = tmp_path / name
        save_checkpoint(path, checkpoint)
        return path

    return make


@pytest.fixture
def predict_array_reference() -> Callable[..., np.ndarray]:
    """The algorithm of `predict_raster` on an array in memory, written the plain way."""
    return _predict_array_reference


def _predict_array_reference(
    model: Model,
    image: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    settings: PredictSettings | None = None,
) -> np.ndarray:
    """The algorithm of `predict_raster` on an array in memory, written the plain way: the
    reference the streamed implementation is tested against.

    Pads the whole image by reflection, predicts each window alone, and accumulates Σw·p and
    Σw over the whole padded extent in float64. For tests: memory is many times the image.

    Args:
        image: (C, H, W) float32 raw bands.
        valid: (H, W) bool; invalid pixels reach the model as NaN and come out as NaN.

    Returns:
        (K, H, W) float32 probabilities, NaN where invalid.
    """
    settings = settings or PredictSettings()
    _, height, width = image.shape
    valid = np.ones((height, width), dtype=bool) if valid is None else valid
    plan = plan_windows(height, width, settings.tiling)
    size, margin = plan.window_px, plan.margin_px
    rows = reflect_indices(np.arange(-margin, plan.extent_height - margin), height)
    cols = reflect_indices(np.arange(-margin, plan.extent_width - margin), width)
    padded = np.where(valid, image, np.nan).astype(np.float32)[:, rows][:, :, cols]
    padded_valid = valid[rows][:, cols]
    weights = window_2d(settings.window_function, size, crop_px=plan.crop_px).astype(np.float64)
    transforms = tta_transforms(settings.tta)
    weighted_sum: np.ndarray | None = None
    weight_sum = np.zeros((plan.extent_height, plan.extent_width))
    for window in plan.windows():
        r, c = int(window.row_off) + margin, int(window.col_off) + margin
        window_valid = padded_valid[r : r + size, c : c + size]
        if not window_valid.any():
            continue
        batch = torch.from_numpy(padded[None, :, r : r + size, c : c + size].copy())
        with torch.inference_mode():
            probs = (
                predict_with_tta(
                    model,
                    batch,
                    transforms,
                    mean=settings.tta_mean,
                    channels_last=settings.channels_last,
                )[0]
                .double()
                .numpy()
            )
        if weighted_sum is None:
            weighted_sum = np.zeros((probs.shape[0], *weight_sum.shape))
        usable = window_valid & np.isfinite(probs).all(axis=0)
        weighted_sum[:, r : r + size, c : c + size] += weights * usable * np.nan_to_num(probs)
        weight_sum[r : r + size, c : c + size] += weights * usable
    if weighted_sum is None:
        raise ValueError("the image has no valid pixel")
    with np.errstate(invalid="ignore", divide="ignore"):
        blended = weighted_sum / weight_sum
    blended[:, weight_sum == 0] = np.nan
    inside = (slice(None), slice(margin, margin + height), slice(margin, margin + width))
    return blended[inside].astype(np.float32)
