"""Networks by name: the config says `model: {name: unet}` and this module builds it.

A new architecture is one entry in `MODELS`: its settings class (for validation, the config
schema and the search space) and a builder taking (in_channels, num_classes, settings mapping).
Its settings live in the config under `model.<name with _ for ->` (`model.fc_densenet`), and
training, resume, prediction and the search treat every entry alike. The per-pixel baselines
(random forest, index threshold) are not networks and are not listed here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from spectraseg.errors import ConfigError, did_you_mean
from spectraseg.models.densenet import FCDenseNet, FCDenseNetSettings
from spectraseg.models.resnet_unet import ENCODER_SIZE_MULTIPLE, ResNetUNet, ResNetUNetSettings
from spectraseg.models.unet import UNet, UNetSettings
from spectraseg.settings import Settings

__all__ = [
    "MODELS",
    "ModelSpec",
    "build_model",
    "model_names",
    "model_settings_class",
    "size_multiple",
]


@dataclass(frozen=True)
class ModelSpec:
    """How to validate the settings of one architecture and build it."""

    settings_class: type[Settings]
    build: Callable[[int, int, Mapping[str, Any]], nn.Module]
    size_multiple: Callable[[Any], int]
    """Inputs must be multiples of this, from the settings alone (no model is built)."""


def _build_unet(in_channels: int, num_classes: int, settings: Mapping[str, Any]) -> nn.Module:
    return UNet(in_channels, num_classes, **settings)


def _build_fc_densenet(
    in_channels: int, num_classes: int, settings: Mapping[str, Any]
) -> nn.Module:
    return FCDenseNet(in_channels, num_classes, **settings)


def _build_resnet_unet(
    in_channels: int, num_classes: int, settings: Mapping[str, Any]
) -> nn.Module:
    return ResNetUNet(in_channels, num_classes, **settings)


MODELS: dict[str, ModelSpec] = {
    "unet": ModelSpec(UNetSettings, _build_unet, lambda s: 1 << s.depth),
    "fc-densenet": ModelSpec(
        FCDenseNetSettings, _build_fc_densenet, lambda s: 1 << len(s.blocks()[0])
    ),
    "resnet-unet": ModelSpec(
        ResNetUNetSettings, _build_resnet_unet, lambda s: ENCODER_SIZE_MULTIPLE
    ),
}


def model_names() -> tuple[str, ...]:
    """The registered architecture names, in registration order."""
    return tuple(MODELS)


def _spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}{did_you_mean(name, list(MODELS))}") from None


def model_settings_class(name: str) -> type[Settings]:
    """The settings class of architecture `name` (e.g. `UNetSettings` for "unet")."""
    return _spec(name).settings_class


def build_model(
    name: str,
    in_channels: int,
    num_classes: int,
    settings: Mapping[str, Any] | Settings | None = None,
) -> nn.Module:
    """A freshly initialized model; `settings` are the architecture's fields (unknown keys fail).

    Example:
        >>> build_model("unet", 4, 2, {"depth": 3, "base_filters": 8}).settings.depth
        3
    """
    spec = _spec(name)
    if isinstance(settings, Settings):
        if not isinstance(settings, spec.settings_class):
            raise ConfigError(
                f"model {name!r} takes {spec.settings_class.__name__}, "
                f"got {type(settings).__name__}"
            )
        values: Mapping[str, Any] = settings.model_dump()
    else:
        values = settings or {}
    return spec.build(in_channels, num_classes, values)


def size_multiple(name: str, settings: Settings) -> int:
    """What input sides of architecture `name` must be multiples of, for these settings.

    Example:
        >>> size_multiple("unet", UNetSettings(depth=3))
        8
    """
    return _spec(name).size_multiple(settings)
