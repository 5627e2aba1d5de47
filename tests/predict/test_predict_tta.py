"""Test-time augmentation: each transform undone, averaged; an equivariant model is unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectraseg.data.augment import D4, tta_transforms
from spectraseg.predict.raster import PredictSettings
from spectraseg.predict.tiling import TilingSettings
from spectraseg.predict.tta import predict_with_tta


def _symmetric_conv_model(in_channels: int, num_classes: int):
    """A 3x3 convolution whose kernels are D4-symmetric: rotating the input rotates the output."""
    generator = torch.Generator().manual_seed(0)
    corner, edge, centre = torch.randn(3, num_classes, in_channels, generator=generator)
    kernel = torch.stack(
        [
            torch.stack([corner, edge, corner], dim=-1),
            torch.stack([edge, centre, edge], dim=-1),
            torch.stack([corner, edge, corner], dim=-1),
        ],
        dim=-2,
    )
    return lambda x: torch.sigmoid(torch.nn.functional.conv2d(x, kernel, padding=1))


def _position_model(x: torch.Tensor) -> torch.Tensor:
    """Not equivariant: adds a ramp that depends on the column."""
    ramp = torch.linspace(0, 1, x.shape[-1]).expand(x.shape[-2], -1)
    return torch.sigmoid(x[:, :1] + ramp)


def test_the_symmetric_model_is_d4_equivariant():
    model = _symmetric_conv_model(3, 2)
    batch = torch.rand(2, 3, 12, 12)
    for transform in D4:
        assert torch.allclose(model(transform(batch)), transform(model(batch)), atol=1e-6)


@pytest.mark.parametrize("count", [2, 4, 8])
def test_tta_does_not_change_a_d4_equivariant_model(count):
    model = _symmetric_conv_model(3, 2)
    batch = torch.rand(3, 3, 16, 16)
    averaged = predict_with_tta(model, batch, tta_transforms(count))
    assert torch.allclose(averaged, model(batch), atol=1e-5)


def test_tta_8_leaves_a_tiled_prediction_of_an_equivariant_model_unchanged(predict_array_reference):
    model = _symmetric_conv_model(3, 2)
    image = np.random.default_rng(2).random((3, 37, 45)).astype(np.float32)
    tiling = TilingSettings(window_px=16, overlap=0.5)
    once = predict_array_reference(model, image, settings=PredictSettings(tiling=tiling, tta=1))
    eight = predict_array_reference(model, image, settings=PredictSettings(tiling=tiling, tta=8))
    assert np.abs(once - eight).max() < 1e-5


def test_tta_averages_the_inverse_transformed_predictions():
    batch = torch.rand(2, 2, 8, 8)
    transforms = tta_transforms(8)
    expected = sum(t.inverse()(_position_model(t(batch))) for t in transforms) / 8
    assert torch.allclose(predict_with_tta(_position_model, batch, transforms), expected)


def test_geometric_mean_is_the_exp_of_the_mean_log():
    batch = torch.rand(1, 2, 8, 8)
    transforms = tta_transforms(4)
    logs = [torch.log(t.inverse()(_position_model(t(batch)))) for t in transforms]
    expected = torch.exp(sum(logs) / 4)
    got = predict_with_tta(_position_model, batch, transforms, mean="geometric")
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got, predict_with_tta(_position_model, batch, transforms))


def test_the_callers_batch_is_left_unchanged_even_by_a_model_returning_a_view():
    batch = torch.rand(2, 1, 8, 8)
    before = batch.clone()
    predict_with_tta(lambda x: x[:, :1], batch, tta_transforms(8))
    assert torch.equal(batch, before)
