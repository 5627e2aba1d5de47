"""Models by name, with their settings validated and typos caught."""

from __future__ import annotations

import pytest
import torch

from spectraseg.errors import ConfigError
from spectraseg.models.registry import build_model, model_names, model_settings_class
from spectraseg.models.unet import UNet, UNetSettings


def test_unet_is_registered_with_its_settings() -> None:
    assert "unet" in model_names()
    assert model_settings_class("unet") is UNetSettings


def test_build_model_applies_the_settings() -> None:
    model = build_model("unet", 6, 3, {"depth": 3, "base_filters": 4})
    assert isinstance(model, UNet)
    assert model.settings.depth == 3
    assert model(torch.zeros(1, 6, 16, 16)).shape == (1, 3, 16, 16)


def test_build_model_takes_a_settings_object_too() -> None:
    model = build_model("unet", 4, 2, UNetSettings(depth=5, base_filters=2))
    assert isinstance(model, UNet) and model.settings.depth == 5


def test_unknown_model_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError, match="did you mean 'unet'"):
        build_model("unett", 4, 2)


def test_unknown_setting_is_named() -> None:
    with pytest.raises(ConfigError, match="base_filter"):
        build_model("unet", 4, 2, {"base_filter": 8})
