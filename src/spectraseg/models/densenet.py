"""FC-DenseNet ("The One Hundred Layers Tiramisu", Jégou et al. 2017), fully configured by settings.

The DSTL write-ups name it as the high-capacity alternative to the U-Net: every layer of a dense
block sees the feature maps of all the layers before it, so the network reuses features instead
of relearning them and stays small in parameters for its depth. The down path keeps each block's
input and output (the skip connection); the bottleneck and the up path pass on only the new
feature maps of a block, which keeps the up path from growing without bound.

Like the U-Net, the model returns logits and `models.unet.probabilities` applies the head.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, ValidationError, model_validator
from torch import nn

from spectraseg.errors import ConfigError
from spectraseg.models.blocks import Activation, check_network_shape, make_activation
from spectraseg.models.head import Head
from spectraseg.models.init import Initializer, init_weights
from spectraseg.models.unet import nearest_valid_size
from spectraseg.settings import Settings

__all__ = ["PRESETS", "DenseBlock", "FCDenseNet", "FCDenseNetSettings", "Preset"]

Preset = Literal[56, 67, 103]
# (layers per down block, layers in the bottleneck block, growth rate), from the paper's table 2;
# the up path mirrors the down path.
PRESETS: dict[int, tuple[tuple[int, ...], int, int]] = {
    56: ((4, 4, 4, 4, 4), 4, 12),
    67: ((5, 5, 5, 5, 5), 5, 16),
    103: ((4, 5, 7, 10, 12), 15, 16),
}


class FCDenseNetSettings(Settings):
    """The architecture of an `FCDenseNet`: a Tiramisu preset, or its parts set one by one.

    `down_blocks`, `bottleneck_layers` and `growth_rate` override the preset's values, so
    `{preset: 103, growth_rate: 8}` is a thinner Tiramisu 103 and `{down_blocks: [2, 3],
    bottleneck_layers: 4}` a small custom one.
    """

    preset: Preset = 56
    """Tiramisu 56 (growth 12, 4 layers per block), 67 (growth 16, 5) or 103 (growth 16)."""
    down_blocks: tuple[int, ...] | None = None
    """Layers in each dense block of the down path (the up path mirrors it); None: the preset's.
    Inputs must be multiples of 2**len(down_blocks)."""
    bottleneck_layers: int | None = Field(default=None, ge=1)
    """Layers in the dense block between the paths; None: the preset's."""
    growth_rate: int | None = Field(default=None, ge=1)
    """Feature maps each dense layer adds; None: the preset's (12 or 16)."""
    first_filters: int = Field(default=48, ge=1)
    """Filters of the first 3x3 convolution, before the first dense block."""
    bottleneck_width: int = Field(default=0, ge=0, le=8)
    """DenseNet-B: a 1x1 convolution to this many times `growth_rate` maps before each 3x3
    one, which caps a late layer's cost; 0 (the Tiramisu) leaves it out."""
    dropout: float = Field(default=0.2, ge=0.0, lt=1.0)
    """Share of feature maps dropped after each dense layer and transition down in training."""
    activation: Activation = "relu"
    init: Initializer = "he_uniform"
    head: Head | None = None
    """sigmoid (classes may overlap) or softmax (exclusive classes). None: `model.head`, else
    chosen by training from the labels (`workflow/head_choice.py`); a network built on its own
    takes sigmoid."""

    @model_validator(mode="after")
    def _positive_blocks(self) -> FCDenseNetSettings:
        if self.down_blocks is not None:
            if not 1 <= len(self.down_blocks) <= 7:
                raise ValueError("down_blocks must name 1 to 7 blocks")
            if any(layers < 1 for layers in self.down_blocks):
                raise ValueError("every block in down_blocks needs at least 1 layer")
        return self

    def blocks(self) -> tuple[tuple[int, ...], int, int]:
        """(layers per down block, bottleneck layers, growth rate) after the overrides.

        Example:
            >>> FCDenseNetSettings(preset=103, growth_rate=8).blocks()
            ((4, 5, 7, 10, 12), 15, 8)
        """
        down, bottleneck, growth = PRESETS[self.preset]
        return (
            self.down_blocks if self.down_blocks is not None else down,
            self.bottleneck_layers if self.bottleneck_layers is not None else bottleneck,
            self.growth_rate if self.growth_rate is not None else growth,
        )


class _DenseLayer(nn.Sequential):
    """Batch norm, activation, [1x1 bottleneck convolution,] 3x3 convolution, spatial dropout."""

    def __init__(
        self, in_channels: int, growth: int, settings: FCDenseNetSettings, dropout: float
    ) -> None:
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_channels),
            make_activation(settings.activation),
        ]
        channels = in_channels
        if settings.bottleneck_width > 0:
            channels = settings.bottleneck_width * growth
            layers += [
                nn.Conv2d(in_channels, channels, 1, bias=False),
                nn.BatchNorm2d(channels),
                make_activation(settings.activation),
            ]
        layers.append(nn.Conv2d(channels, growth, 3, padding=1, bias=False))
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


class DenseBlock(nn.Module):
    """Layers that each see the block's input and every earlier layer's maps.

    Returns the input and all new maps (`keep_input`, the down path) or only the new maps (the
    bottleneck and the up path).
    """

    def __init__(
        self,
        in_channels: int,
        layers: int,
        growth: int,
        settings: FCDenseNetSettings,
        *,
        keep_input: bool,
    ) -> None:
        super().__init__()
        self.keep_input = keep_input
        self.layers = nn.ModuleList(
            _DenseLayer(in_channels + index * growth, growth, settings, settings.dropout)
            for index in range(layers)
        )
        self.out_channels = (in_channels if keep_input else 0) + layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return torch.cat(features if self.keep_input else features[1:], dim=1)


class _TransitionDown(nn.Sequential):
    """Batch norm, activation, 1x1 convolution, dropout, then 2x2 max pooling."""

    def __init__(self, channels: int, settings: FCDenseNetSettings) -> None:
        layers: list[nn.Module] = [
            nn.BatchNorm2d(channels),
            make_activation(settings.activation),
            nn.Conv2d(channels, channels, 1, bias=False),
        ]
        if settings.dropout > 0:
            layers.append(nn.Dropout2d(settings.dropout))
        layers.append(nn.MaxPool2d(2))
        super().__init__(*layers)


class FCDenseNet(nn.Module):
    """FC-DenseNet for any number of bands and classes; returns (N, K, H, W) logits.

    `FCDenseNet(in_channels=8, num_classes=5)` is a Tiramisu 56; keyword arguments override
    `FCDenseNetSettings` fields (`FCDenseNet(8, 5, preset=103, dropout=0.1)`).

    Args:
        in_channels: bands of the input, indices included.
        num_classes: output channels (classes).
        settings: the architecture; `overrides` replace some of its fields.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        settings: FCDenseNetSettings | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.settings = _resolve_settings(settings, overrides)
        check_network_shape("an FC-DenseNet", in_channels, num_classes, self.settings.head)
        self.in_channels = in_channels
        self.num_classes = num_classes
        settings = self.settings
        down, bottleneck_layers, growth = settings.blocks()
        self.levels = len(down)

        self.first = nn.Conv2d(in_channels, settings.first_filters, 3, padding=1, bias=False)
        channels = settings.first_filters
        self.down = nn.ModuleList()
        self.transitions = nn.ModuleList()
        skip_channels: list[int] = []
        for layers in down:
            block = DenseBlock(channels, layers, growth, settings, keep_input=True)
            self.down.append(block)
            channels = block.out_channels
            skip_channels.append(channels)
            self.transitions.append(_TransitionDown(channels, settings))
        self.bottleneck = DenseBlock(
            channels, bottleneck_layers, growth, settings, keep_input=False
        )
        new_channels = self.bottleneck.out_channels

        self.ups = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for level, layers in reversed(list(enumerate(down))):
            # Transition up: a stride-2 transposed convolution of the previous block's new maps.
            self.ups.append(
                nn.ConvTranspose2d(
                    new_channels, new_channels, 3, stride=2, padding=1, output_padding=1
                )
            )
            last = level == 0
            block = DenseBlock(
                new_channels + skip_channels[level], layers, growth, settings, keep_input=last
            )
            self.up_blocks.append(block)
            new_channels = block.out_channels
        self.head = nn.Conv2d(new_channels, num_classes, kernel_size=1)
        init_weights(self, settings.init, activation=settings.activation)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (2**number of down blocks)."""
        return 1 << self.levels

    def check_input_size(self, height: int, width: int) -> None:
        """Raise a `ConfigError` naming the nearest valid size if the blocks cannot divide it."""
        multiple = self.size_multiple
        if height % multiple == 0 and width % multiple == 0:
            return
        suggestion = (
            f"{nearest_valid_size(height, self.levels)} x {nearest_valid_size(width, self.levels)}"
        )
        raise ConfigError(
            f"input of {height} x {width} px does not fit an FC-DenseNet of {self.levels} down "
            f"blocks: height and width must be multiples of {multiple}; the nearest valid size is "
            f"{suggestion} px. Change the patch or window size, or model.fc_densenet.down_blocks."
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) -> (N, num_classes, H, W) logits."""
        self.check_input_size(x.shape[-2], x.shape[-1])
        x = self.first(x)
        skips: list[torch.Tensor] = []
        for block, transition in zip(self.down, self.transitions, strict=True):
            x = block(x)
            skips.append(x)
            x = transition(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.ups, self.up_blocks, reversed(skips), strict=True):
            x = block(torch.cat([up(x), skip], dim=1))
        logits: torch.Tensor = self.head(x)
        return logits


def _resolve_settings(
    settings: FCDenseNetSettings | None, overrides: dict[str, Any]
) -> FCDenseNetSettings:
    """The settings with overrides applied and validated, or a one-line `ConfigError`."""
    base = settings.model_dump() if settings is not None else {}
    try:
        resolved = FCDenseNetSettings.model_validate({**base, **overrides})
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"FC-DenseNet setting {key!r}: {message} (got {first.get('input')!r})"
        ) from None
    # The head left to training's choice: a network on its own is multi-label.
    return (
        resolved if resolved.head is not None else resolved.model_copy(update={"head": "sigmoid"})
    )
