"""The edge margin: how far from a window border a model's predictions differ from the whole
image's. A model that sees one pixel measures 0; each zero-padded 3x3 layer adds one pixel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional

from spectraseg.predict.edge_margin import measure_edge_margin, round_up


def _images(count: int = 2, shape: tuple[int, int, int] = (3, 64, 80)) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random(shape).astype(np.float32) for _ in range(count)]


def _stacked_3x3(layers: int):  # type: ignore[no-untyped-def]
    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(3, 3, 3, 3, generator=generator) for _ in range(layers)]

    def model(x: torch.Tensor) -> torch.Tensor:
        for weight in weights:
            x = functional.conv2d(x, weight, padding=1)
        return torch.sigmoid(x[:, :2])

    return model


def test_a_1x1_convolution_measures_0(pointwise):
    assert measure_edge_margin(pointwise(3, 2), _images(), window_px=32, size_multiple=8) == 0


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_each_zero_padded_3x3_layer_adds_a_pixel_of_margin(layers):
    assert measure_edge_margin(_stacked_3x3(layers), _images(), window_px=32) == layers


def test_the_margin_is_rounded_up_to_the_size_multiple():
    assert measure_edge_margin(_stacked_3x3(3), _images(), window_px=32, size_multiple=8) == 8


def test_a_looser_tolerance_never_measures_a_wider_margin():
    model, images = _stacked_3x3(3), _images()
    tight = measure_edge_margin(model, images, window_px=32, tolerance=1e-4)
    loose = measure_edge_margin(model, images, window_px=32, tolerance=0.2)
    assert tight is not None and loose is not None and loose <= tight


def test_images_too_small_to_cut_into_windows_measure_nothing(pointwise):
    tiny = _images(shape=(3, 8, 8))
    assert measure_edge_margin(pointwise(3, 2), tiny, window_px=32, size_multiple=8) is None


def test_round_up():
    assert [round_up(v, 16) for v in (0, 1, 16, 17)] == [0, 16, 16, 32]


def test_a_margin_wider_than_the_probe_windows_stays_unmeasured():
    def global_context(x: torch.Tensor) -> torch.Tensor:
        # Every output pixel depends on the whole input: no window can match the whole image.
        return torch.sigmoid(x[:, :2] - x[:, :2].mean(dim=(2, 3), keepdim=True))

    assert measure_edge_margin(global_context, _images(), window_px=32) is None
