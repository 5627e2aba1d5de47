"""Activation memory per pixel, measured with forward hooks, for `--window auto`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spectraseg.models.unet import UNet
from spectraseg.predict.memory import activation_bytes_per_pixel


def test_a_plain_callable_counts_its_input_and_output():
    assert activation_bytes_per_pixel(lambda x: x[:, :1] * 2, 3, 16) == (3 + 1) * 4


def test_a_chain_of_layers_counts_the_widest_live_pair_not_the_sum():
    model = nn.Sequential(nn.Conv2d(2, 8, 1), nn.Conv2d(8, 4, 1), nn.Conv2d(4, 1, 1)).eval()
    # While the second layer runs: the model's input (2), the first output (8) and its own (4).
    assert activation_bytes_per_pixel(model, 2, 8) == (2 + 8 + 4) * 4


@pytest.mark.parametrize("size", [32, 64])
def test_a_unet_costs_the_same_per_pixel_at_any_valid_size(size):
    torch.manual_seed(0)
    model = UNet(4, 2, depth=3, base_filters=8).eval()
    assert activation_bytes_per_pixel(model, 4, size) == activation_bytes_per_pixel(model, 4, 16)


def test_a_wider_unet_needs_more_memory_per_pixel():
    narrow = UNet(4, 2, depth=3, base_filters=8).eval()
    wide = UNet(4, 2, depth=3, base_filters=16).eval()
    assert activation_bytes_per_pixel(wide, 4, 32) > 1.5 * activation_bytes_per_pixel(narrow, 4, 32)
