"""Tiled, blended prediction equals the model on the whole padded image when it can.

For a model whose receptive field fits inside the overlap margin, every window sees exactly
what the whole padded image shows at those pixels, so blending has nothing to hide and the
result must be the model's own output, for any shape and any window/overlap pair.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import torch

from spectraseg.predict.raster import PredictSettings, predict_raster
from spectraseg.predict.tiling import TilingSettings

SHAPES = [(37, 53), (53, 37), (5, 3), (64, 17), (101, 99)]
TILINGS = [
    TilingSettings(window_px=16, overlap=0.5),
    TilingSettings(window_px=8, overlap=0.25),
    TilingSettings(window_px=32, overlap=0.0),
    TilingSettings(window_px=24, overlap=0.75),
]


def _whole_padded(model, image: np.ndarray, margin: int) -> np.ndarray:
    """The model on the image padded by `margin` (reflection), cropped back to the image."""
    padded = np.pad(image, ((0, 0), (margin, margin), (margin, margin)), mode="reflect")
    with torch.inference_mode():
        probs = model(torch.from_numpy(padded)[None])[0].numpy()
    return probs[:, margin : margin + image.shape[1], margin : margin + image.shape[2]]


@pytest.mark.parametrize("tiling", TILINGS, ids=repr)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_pointwise_model_tiled_equals_the_model_on_the_padded_image(
    predict_array_reference, shape, tiling, pointwise
):
    model = pointwise(4, 3)
    image = np.random.default_rng(0).random((4, *shape)).astype(np.float32)
    settings = PredictSettings(tiling=tiling, tta=1)
    tiled = predict_array_reference(model, image, settings=settings)
    expected = _whole_padded(model, image, tiling.margin_px)
    assert np.abs(tiled - expected).max() < 1e-5


@pytest.mark.parametrize("shape", [(37, 53), (20, 9)], ids=str)
def test_streamed_pointwise_prediction_equals_the_model(shape, pointwise, make_raster, tmp_path):
    model = pointwise(3, 2)
    path = make_raster(*shape)
    with rasterio.open(path) as dataset:
        image = dataset.read().astype(np.float32)
    settings = PredictSettings(tiling=TilingSettings(window_px=16, overlap=0.5), tta=8)
    outputs = predict_raster(model, path, tmp_path / "out", settings=settings)
    with rasterio.open(outputs.probabilities) as dataset:
        tiled = dataset.read()
    assert np.abs(tiled - _whole_padded(model, image, 4)).max() < 1e-5


@pytest.mark.parametrize("shape", [(37, 53), (9, 30)], ids=str)
def test_a_3x3_model_with_a_one_pixel_centre_crop_equals_the_model_on_the_padded_image(
    predict_array_reference, shape, conv3x3
):
    # The zero padding inside each window corrupts only its outermost pixel ring; cropping that
    # ring away leaves windows that agree with the whole padded image everywhere they count.
    model = conv3x3(2, 2)
    image = np.random.default_rng(3).random((2, *shape)).astype(np.float32)
    tiling = TilingSettings(window_px=16, overlap=0.5, centre_crop_px=1)
    tiled = predict_array_reference(model, image, settings=PredictSettings(tiling=tiling, tta=1))
    assert np.abs(tiled - _whole_padded(model, image, tiling.margin_px)).max() < 1e-5


@pytest.mark.parametrize("window_function", ["spline", "hann", "flat"])
def test_a_constant_prediction_blends_to_that_constant(predict_array_reference, window_function):
    image = np.random.default_rng(0).random((3, 41, 29)).astype(np.float32)
    settings = PredictSettings(
        tiling=TilingSettings(window_px=16, overlap=0.5), window_function=window_function
    )
    tiled = predict_array_reference(
        lambda x: torch.full((x.shape[0], 2, *x.shape[2:]), 0.7), image, settings=settings
    )
    assert np.abs(tiled - 0.7).max() < 1e-6


def test_an_image_smaller_than_one_window_is_padded_and_predicted(
    predict_array_reference, pointwise
):
    model = pointwise(3, 1)
    image = np.random.default_rng(0).random((3, 5, 7)).astype(np.float32)
    settings = PredictSettings(tiling=TilingSettings(window_px=64, overlap=0.5), tta=4)
    tiled = predict_array_reference(model, image, settings=settings)
    assert tiled.shape == (1, 5, 7)
    assert np.abs(tiled - _whole_padded(model, image, 0)).max() < 1e-5
