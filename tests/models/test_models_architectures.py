"""The contract every registered network keeps: any band count from 1 to 24, any class count,
output size = input size, a training step that changes the weights, and sizes it cannot take
refused with the nearest valid one.

Each architecture is tried at its smallest (a few filters, short blocks) so the whole contract
costs seconds; the presets' shapes are checked separately by counting layers.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from spectraseg.errors import ConfigError
from spectraseg.models.densenet import FCDenseNet, FCDenseNetSettings
from spectraseg.models.registry import build_model, model_names, model_settings_class, size_multiple

TINY: dict[str, dict[str, Any]] = {
    "unet": {"depth": 3, "base_filters": 4},
    "fc-densenet": {
        "down_blocks": (1, 2),
        "bottleneck_layers": 2,
        "growth_rate": 3,
        "first_filters": 4,
    },
    "resnet-unet": {"encoder": "resnet18", "decoder_filters": (4, 4, 4, 4, 4)},
}


def test_every_registered_network_has_a_tiny_form_here() -> None:
    assert set(model_names()) == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize(("bands", "classes"), [(1, 1), (4, 3), (13, 10), (24, 2)])
def test_any_bands_and_classes_give_an_output_the_size_of_the_input(
    name: str, bands: int, classes: int
) -> None:
    torch.manual_seed(0)
    model = build_model(name, bands, classes, TINY[name])
    multiple = size_multiple(name, model_settings_class(name).model_validate(TINY[name]))
    assert model.size_multiple == multiple
    side = 2 * multiple
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, bands, side, side + multiple))
    assert out.shape == (2, classes, side, side + multiple)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(TINY))
@pytest.mark.parametrize("bands", [1, 4, 13, 24])
def test_a_training_step_changes_every_trainable_layer(name: str, bands: int) -> None:
    torch.manual_seed(0)
    model = build_model(name, bands, 2, TINY[name])
    before = {key: value.detach().clone() for key, value in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    side = 2 * int(model.size_multiple)
    target = (torch.rand(2, 2, side, side) > 0.5).float()
    loss = nn.functional.binary_cross_entropy_with_logits(
        model(torch.randn(2, bands, side, side)), target
    )
    loss.backward()
    optimizer.step()
    unchanged = [key for key, value in model.named_parameters() if torch.equal(value, before[key])]
    assert not unchanged


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_size_the_network_cannot_divide_names_the_nearest_valid_one(name: str) -> None:
    model = build_model(name, 3, 2, TINY[name])
    multiple = int(model.size_multiple)
    with pytest.raises(ConfigError, match=f"multiples of {multiple}"):
        model(torch.zeros(1, 3, multiple + 1, multiple))


@pytest.mark.parametrize("preset", [56, 67, 103])
def test_the_tiramisu_presets_have_the_layers_their_names_count(preset: int) -> None:
    # Thin growth and few first filters keep Tiramisu 103 cheap to build; depth is unchanged.
    model = FCDenseNet(3, 2, preset=preset, growth_rate=2, first_filters=4)
    convolutions = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    assert len(convolutions) == preset
    assert model.size_multiple == 32


def test_preset_parts_can_be_overridden_one_by_one() -> None:
    settings = FCDenseNetSettings(preset=103, growth_rate=8, down_blocks=(2, 2, 2))
    assert settings.blocks() == ((2, 2, 2), 15, 8)
    assert FCDenseNet(4, 2, settings).size_multiple == 8


def test_densenet_b_bottlenecks_add_a_one_by_one_convolution_per_layer() -> None:
    plain = FCDenseNet(3, 2, **TINY["fc-densenet"])
    bottlenecked = FCDenseNet(3, 2, **TINY["fc-densenet"], bottleneck_width=4)
    count = lambda model: sum(isinstance(m, nn.Conv2d) for m in model.modules())  # noqa: E731
    dense_layers = 2 * (1 + 2) + 2
    assert count(bottlenecked) == count(plain) + dense_layers


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"down_blocks": ()}, "1 to 7 blocks"),
        ({"down_blocks": (2, 0)}, "at least 1 layer"),
        ({"growth_rate": 0}, "growth_rate"),
        ({"preset": 100}, "preset"),
    ],
)
def test_bad_densenet_settings_are_one_line_errors(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model("fc-densenet", 3, 2, settings)
