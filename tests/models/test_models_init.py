"""Initializers by name: the variance each one promises, fans of transposed convolutions."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from spectraseg.models.init import INITIALIZERS, fans, init_weights


@pytest.mark.parametrize("name", INITIALIZERS)
def test_each_initializer_gives_its_variance(name: str) -> None:
    torch.manual_seed(0)
    layer = nn.Conv2d(64, 128, 3)
    init_weights(layer, name)
    fan_in, fan_out = 64 * 9, 128 * 9
    expected = 2 / fan_in if name.startswith("he_") else 2 / (fan_in + fan_out)
    assert layer.weight.var().item() == pytest.approx(expected, rel=0.05)
    assert layer.bias is not None and torch.all(layer.bias == 0)


def test_uniform_and_normal_differ_in_shape_not_scale() -> None:
    torch.manual_seed(0)
    uniform, normal = nn.Linear(500, 500), nn.Linear(500, 500)
    init_weights(uniform, "he_uniform")
    init_weights(normal, "he_normal")
    bound = math.sqrt(6 / 500)
    assert uniform.weight.abs().max() <= bound
    assert normal.weight.abs().max() <= 2 * math.sqrt(2 / 500) / 0.87962566103423978 + 1e-6


def test_leaky_relu_gain_is_slightly_below_relu() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(1000, 1000)
    init_weights(layer, "he_normal", activation="leaky_relu")
    assert layer.weight.var().item() == pytest.approx(2 / (1 + 0.01**2) / 1000, rel=0.02)


def test_transposed_convolution_fan_in_counts_the_taps_that_reach_one_output() -> None:
    # A 2x2 stride-2 transposed convolution feeds each output pixel from one tap per channel.
    assert fans(nn.ConvTranspose2d(256, 128, kernel_size=2, stride=2)) == (256.0, 128 * 4)
    assert fans(nn.Conv2d(16, 32, 3)) == (16 * 9, 32 * 9)


def test_batch_norm_is_reset_and_unknown_names_refused() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with torch.no_grad():
        model[1].weight.fill_(3.0)
    init_weights(model, "glorot_uniform")
    assert torch.all(model[1].weight == 1) and torch.all(model[1].bias == 0)
    with pytest.raises(ValueError, match="he_uniform"):
        init_weights(model, "lecun")
