"""The U-Net contract: any bands and classes, every option, clear errors for sizes it rejects."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
import torch

from spectraseg.errors import ConfigError
from spectraseg.models.unet import (
    UNet,
    UNetSettings,
    forward_flops_per_pixel,
    largest_valid_size,
    level_filters,
    nearest_valid_size,
    probabilities,
)

# Every option with the values worth telling apart; filters stay tiny so each build is cheap.
OPTIONS: dict[str, tuple[Any, ...]] = {
    "in_channels": (4, 8, 13, 24),
    "num_classes": (1, 10),
    "depth": (3, 4, 5, 6),
    "growth": (1.5, 2.0),
    "kernel_size": (3, 5),
    "convs_per_level": (1, 2, 3),
    "batch_norm": (True, False),
    "dropout": (0.0, 0.2),
    "dropout_placement": ("bottleneck", "decoder", "encoder", "all"),
    "activation": ("relu", "elu", "leaky_relu", "gelu"),
    "init": ("he_uniform", "he_normal", "glorot_uniform", "glorot_normal"),
    "upsampling": ("transpose", "interpolate"),
    "head": ("sigmoid", "softmax"),
}


def allowed(row: dict[str, Any]) -> bool:
    """A softmax over a single class is meaningless and refused (see the test below)."""
    return not (row.get("head") == "softmax" and row.get("num_classes") == 1)


def pairwise_rows(options: dict[str, tuple[Any, ...]], seed: int = 0) -> list[dict[str, Any]]:
    """Few rows in which every allowed pair of values of any two options occurs together.

    Bugs in such a model almost always come from one option or the interplay of two, so covering
    all pairs finds them with ~30 builds instead of the full product's ~2 million.
    """
    names = list(options)
    uncovered = {
        ((first, a), (second, b))
        for first, second in itertools.combinations(names, 2)
        for a in options[first]
        for b in options[second]
        if allowed({first: a, second: b})
    }
    generator = random.Random(seed)
    rows: list[dict[str, Any]] = []
    while uncovered:
        # Seed each candidate with an uncovered pair, fill the rest at random, keep the best.
        best, best_gain = None, -1
        for _ in range(40):
            (first, a), (second, b) = generator.choice(sorted(uncovered, key=repr))
            row = {name: generator.choice(options[name]) for name in names}
            row[first], row[second] = a, b
            if not allowed(row):
                continue
            gain = sum(
                ((x, row[x]), (y, row[y])) in uncovered for x, y in itertools.combinations(names, 2)
            )
            if gain > best_gain:
                best, best_gain = row, gain
        assert best is not None
        rows.append(best)
        uncovered -= {((x, best[x]), (y, best[y])) for x, y in itertools.combinations(names, 2)}
    return rows


ROWS = pairwise_rows(OPTIONS)


@pytest.mark.parametrize("row", ROWS, ids=[f"combo{index}" for index in range(len(ROWS))])
def test_every_option_pair_builds_and_trains(row: dict[str, Any]) -> None:
    settings = {
        key: value for key, value in row.items() if key not in ("in_channels", "num_classes")
    }
    torch.manual_seed(0)
    model = UNet(row["in_channels"], row["num_classes"], base_filters=4, max_filters=16, **settings)
    size = max(32, model.size_multiple)
    logits = model(torch.randn(2, row["in_channels"], size, size))
    assert logits.shape == (2, row["num_classes"], size, size)
    probs = probabilities(logits, model.settings.head)
    assert probs.min() >= 0 and probs.max() <= 1
    (logits**2).mean().backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name


def test_the_pairwise_sample_covers_every_value_of_every_option() -> None:
    for name, values in OPTIONS.items():
        assert {row[name] for row in ROWS} == set(values), name
    assert len(ROWS) < 40


def test_defaults_give_the_reference_filters_and_any_band_count_works() -> None:
    model = UNet(in_channels=8, num_classes=5)
    assert level_filters(model.settings) == (32, 64, 128, 256, 512)
    assert model.size_multiple == 16
    assert model(torch.zeros(1, 8, 32, 48)).shape == (1, 5, 32, 48)


def test_filters_grow_by_the_factor_and_stop_at_the_cap() -> None:
    settings = UNetSettings(depth=5, base_filters=16, growth=3.0, max_filters=200)
    assert level_filters(settings) == (16, 48, 144, 200, 200, 200)


def test_sizes_the_depth_cannot_divide_are_refused_with_the_nearest_valid_size() -> None:
    model = UNet(4, 2, depth=4, base_filters=4)
    with pytest.raises(ConfigError, match=r"30 x 50 px .* multiples of 16.* 32 x 48 px"):
        model(torch.zeros(1, 4, 30, 50))


def test_valid_size_helpers() -> None:
    assert nearest_valid_size(24, 4) == 16  # ties go down
    assert nearest_valid_size(25, 4) == 32
    assert nearest_valid_size(3, 5) == 32
    assert largest_valid_size(127, 4) == 112
    assert largest_valid_size(15, 4) == 0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"depth": 7}, "depth"),
        ({"kernel_size": 4}, "odd"),
        ({"dept": 3}, "dept"),
        ({"activation": "swish"}, "activation"),
    ],
)
def test_bad_settings_name_the_setting(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        UNet(4, 2, **overrides)


def test_a_softmax_head_needs_two_classes() -> None:
    with pytest.raises(ConfigError, match="softmax"):
        UNet(4, 1, head="softmax")


def test_settings_object_and_overrides_combine() -> None:
    model = UNet(4, 2, UNetSettings(depth=3, base_filters=4), dropout=0.1)
    assert (model.settings.depth, model.settings.base_filters, model.settings.dropout) == (
        3,
        4,
        0.1,
    )


def test_channels_last_gives_the_same_result() -> None:
    torch.manual_seed(0)
    model = UNet(5, 3, depth=3, base_filters=8).eval()
    image = torch.randn(2, 5, 32, 32)
    expected = model(image)
    model = model.to(memory_format=torch.channels_last)
    result = model(image.to(memory_format=torch.channels_last))
    torch.testing.assert_close(result, expected, rtol=1e-4, atol=1e-4)


def test_the_same_seed_builds_the_same_model() -> None:
    torch.manual_seed(3)
    first = UNet(4, 2, depth=3, base_filters=4)
    torch.manual_seed(3)
    second = UNet(4, 2, depth=3, base_filters=4)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)


def test_dropout_goes_where_the_placement_says() -> None:
    def dropout_parts(placement: str) -> set[str]:
        model = UNet(4, 2, depth=3, base_filters=4, dropout=0.3, dropout_placement=placement)
        names = {name for name, m in model.named_modules() if isinstance(m, torch.nn.Dropout2d)}
        return {name.split(".")[0] for name in names}

    assert dropout_parts("bottleneck") == {"bottleneck"}
    assert dropout_parts("encoder") == {"encoder", "bottleneck"}
    assert dropout_parts("decoder") == {"decoder"}
    assert dropout_parts("all") == {"encoder", "bottleneck", "decoder"}


def test_reference_unet_costs_about_436_kflop_per_pixel() -> None:
    # Depth 4, filters 32 to 512, 20 bands, 10 classes, as in the DSTL write-ups (docs/DESIGN.md).
    # With pixel-repeating upsampling the decoder convolves the full joined width: 436 kFLOP.
    # A transposed convolution first halves that width, which saves 13 %.
    interpolated = UNet(20, 10, upsampling="interpolate")
    assert forward_flops_per_pixel(interpolated, 20) == pytest.approx(436_096)
    transposed = UNet(20, 10, upsampling="transpose")
    assert forward_flops_per_pixel(transposed, 20) == pytest.approx(378_752)
    assert transposed.training  # the count leaves the model's mode as it was
