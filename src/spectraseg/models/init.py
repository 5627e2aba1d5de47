"""Weight initializers by name, as the Keras names the DSTL write-ups compared.

The DSTL winners found He initialization trained their U-Nets best; which one wins for a given
depth and activation is an empirical question, so the choice is a setting the search can tune.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import torch
from torch import nn

__all__ = ["INITIALIZERS", "Initializer", "fans", "init_weights"]

Initializer = Literal["he_uniform", "he_normal", "glorot_uniform", "glorot_normal"]
INITIALIZERS: tuple[str, ...] = get_args(Initializer)

# Standard deviation of a normal truncated at ±2σ relative to the untruncated one (as in Keras):
# dividing by it keeps the variance the initializer promises.
_TRUNCATION_STD = 0.87962566103423978


def fans(layer: nn.Conv2d | nn.ConvTranspose2d | nn.Linear) -> tuple[float, float]:
    """(fan in, fan out): how many inputs feed one output, and how many outputs one input feeds.

    A stride-s transposed convolution feeds each output pixel from only k²/s² kernel taps per
    input channel, so its fan in is smaller than the weight shape suggests (torch and Keras
    both use the shape, which makes He-initialized transposed convolutions too quiet).
    """
    weight = layer.weight
    if isinstance(layer, nn.Linear):
        return float(weight.shape[1]), float(weight.shape[0])
    taps = math.prod(weight.shape[2:])
    if isinstance(layer, nn.ConvTranspose2d):
        in_channels, out_channels = weight.shape[0], weight.shape[1] * layer.groups
        strides = math.prod(layer.stride)
        return in_channels * max(taps / strides, 1.0), out_channels * taps
    in_channels, out_channels = weight.shape[1] * layer.groups, weight.shape[0]
    return float(in_channels * taps), float(out_channels * taps)


def _activation_gain(activation: str) -> float:
    """He's gain: √2 for rectifiers (ELU and GELU behave close enough), less for leaky ReLU."""
    if activation == "leaky_relu":
        return nn.init.calculate_gain("leaky_relu", 0.01)
    return math.sqrt(2.0)


def _init_layer(
    layer: nn.Conv2d | nn.ConvTranspose2d | nn.Linear, name: str, activation: str
) -> None:
    fan_in, fan_out = fans(layer)
    if name.startswith("he_"):
        std = _activation_gain(activation) / math.sqrt(fan_in)
    else:
        std = math.sqrt(2.0 / (fan_in + fan_out))
    with torch.no_grad():
        if name.endswith("_uniform"):
            bound = math.sqrt(3.0) * std
            layer.weight.uniform_(-bound, bound)
        else:
            corrected = std / _TRUNCATION_STD
            nn.init.trunc_normal_(layer.weight, 0.0, corrected, -2 * corrected, 2 * corrected)
        if layer.bias is not None:
            layer.bias.zero_()


def init_weights(module: nn.Module, name: str, *, activation: str = "relu") -> None:
    """Initialize every convolution and linear layer of `module` in place; biases to 0.

    Batch norm layers get weight 1 and bias 0. Randomness comes from torch's global generator,
    which the caller seeds.

    Args:
        name: one of `INITIALIZERS`.
        activation: the activation that follows the layers, for He's gain.
    """
    if name not in INITIALIZERS:
        raise ValueError(f"unknown initializer {name!r}; known: {', '.join(INITIALIZERS)}")
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            _init_layer(layer, name, activation)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
