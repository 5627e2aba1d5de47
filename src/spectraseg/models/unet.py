"""A U-Net whose whole architecture is a settings object, so a search can grow or shrink it.

The model returns logits; `probabilities` applies the head (sigmoid for overlapping classes as
in DSTL, softmax for exclusive ones) outside, so losses can use the numerically stable
logit forms and prediction can average probabilities over test-time transforms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from pydantic import Field, ValidationError, field_validator
from torch import nn

from spectraseg.errors import ConfigError
from spectraseg.models.blocks import (
    Activation,
    ConvBlock,
    ConvOptions,
    UpBlock,
    Upsampling,
    check_network_shape,
)
from spectraseg.models.head import Head
from spectraseg.models.init import Initializer, init_weights
from spectraseg.settings import Settings

__all__ = [
    "UNet",
    "UNetSettings",
    "forward_flops_per_pixel",
    "largest_valid_size",
    "level_filters",
    "nearest_valid_size",
    "probabilities",
]


class UNetSettings(Settings):
    """The architecture of a `UNet`; the defaults are the DSTL-size U-Net (32 to 512 filters)."""

    depth: int = Field(default=4, ge=3, le=6)
    """Number of 2x downsamplings; inputs must be multiples of 2**depth."""
    base_filters: int = Field(default=32, ge=1)
    """Filters at full resolution."""
    growth: float = Field(default=2.0, ge=1.0, le=4.0)
    """Factor between the filters of one level and the next deeper one."""
    max_filters: int = Field(default=512, ge=1)
    """Cap on the filters of any level, which bounds the cost of deep models."""
    kernel_size: int = Field(default=3, ge=1, le=9)
    convs_per_level: int = Field(default=2, ge=1, le=4)
    batch_norm: bool = True
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Share of feature maps dropped in training, where `dropout_placement` says."""
    dropout_placement: Literal["bottleneck", "decoder", "encoder", "all"] = "bottleneck"
    """"encoder" includes the bottleneck, "decoder" does not; "all" is both."""
    activation: Activation = "relu"
    init: Initializer = "he_uniform"
    upsampling: Upsampling = "transpose"
    head: Head | None = None
    """sigmoid (classes may overlap) or softmax (exclusive classes). None: `model.head`, else
    chosen by training from the labels (`workflow/head_choice.py`); a network built on its own
    takes sigmoid."""

    @field_validator("kernel_size")
    @classmethod
    def _odd_kernel(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"kernel_size must be odd so padding keeps the size, got {value}")
        return value


def level_filters(settings: UNetSettings) -> tuple[int, ...]:
    """Filters at each level, full resolution first and the bottleneck last (depth + 1 values).

    Example:
        >>> level_filters(UNetSettings())
        (32, 64, 128, 256, 512)
    """
    return tuple(
        max(1, min(settings.max_filters, round(settings.base_filters * settings.growth**level)))
        for level in range(settings.depth + 1)
    )


def nearest_valid_size(size: int, depth: int) -> int:
    """The multiple of 2**depth nearest to `size` (ties go down), at least 2**depth.

    Example:
        >>> nearest_valid_size(100, 4), nearest_valid_size(8, 4)
        (96, 16)
    """
    multiple = 1 << depth
    return max(multiple, (size + multiple // 2 - 1) // multiple * multiple)


def largest_valid_size(size: int, depth: int) -> int:
    """The largest multiple of 2**depth that is at most `size`; 0 when even 2**depth is too big.

    Example:
        >>> largest_valid_size(100, 4), largest_valid_size(8, 4)
        (96, 0)
    """
    multiple = 1 << depth
    return size // multiple * multiple


def probabilities(logits: torch.Tensor, head: Head) -> torch.Tensor:
    """Per-class probabilities from (N, K, H, W) logits: sigmoid, or softmax over classes."""
    if head == "sigmoid":
        return torch.sigmoid(logits)
    if head == "softmax":
        return torch.softmax(logits, dim=1)
    raise ConfigError(f"unknown head {head!r}; known: sigmoid, softmax")


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) for any number of bands and classes.

    `UNet(in_channels=8, num_classes=5)` works with defaults; keyword arguments override
    `UNetSettings` fields (`UNet(8, 5, depth=5, dropout=0.1)`). Works in channels-last memory
    format and under `torch.compile`.

    Args:
        in_channels: bands of the input, indices included.
        num_classes: output channels (classes).
        settings: the architecture; `overrides` replace some of its fields.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        settings: UNetSettings | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.settings = _resolve_settings(settings, overrides)
        check_network_shape("a U-Net", in_channels, num_classes, self.settings.head)
        self.in_channels = in_channels
        self.num_classes = num_classes
        settings = self.settings
        options = ConvOptions(
            kernel_size=settings.kernel_size,
            convs=settings.convs_per_level,
            batch_norm=settings.batch_norm,
            activation=settings.activation,
        )
        placement = settings.dropout_placement
        encoder_dropout = settings.dropout if placement in ("encoder", "all") else 0.0
        decoder_dropout = settings.dropout if placement in ("decoder", "all") else 0.0
        bottleneck_dropout = settings.dropout if placement != "decoder" else 0.0
        filters = level_filters(settings)

        self.encoder = nn.ModuleList()
        channels = in_channels
        for width in filters[:-1]:
            self.encoder.append(ConvBlock(channels, width, options, dropout=encoder_dropout))
            channels = width
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = ConvBlock(channels, filters[-1], options, dropout=bottleneck_dropout)
        self.decoder = nn.ModuleList()
        channels = filters[-1]
        for width in reversed(filters[:-1]):
            self.decoder.append(
                UpBlock(
                    channels,
                    width,
                    width,
                    options,
                    upsampling=settings.upsampling,
                    dropout=decoder_dropout,
                )
            )
            channels = width
        self.head = nn.Conv2d(channels, num_classes, kernel_size=1)
        init_weights(self, settings.init, activation=settings.activation)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (2**depth)."""
        return 1 << self.settings.depth

    def check_input_size(self, height: int, width: int) -> None:
        """Raise a `ConfigError` naming the nearest valid size if the depth cannot divide it."""
        multiple = self.size_multiple
        if height % multiple == 0 and width % multiple == 0:
            return
        depth = self.settings.depth
        suggestion = f"{nearest_valid_size(height, depth)} x {nearest_valid_size(width, depth)}"
        raise ConfigError(
            f"input of {height} x {width} px does not fit a U-Net of depth {depth}: height and "
            f"width must be multiples of {multiple}; the nearest valid size is {suggestion} px. "
            "Change the patch or window size, or the model depth."
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) -> (N, num_classes, H, W) logits."""
        self.check_input_size(x.shape[-2], x.shape[-1])
        skips: list[torch.Tensor] = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, skip in zip(self.decoder, reversed(skips), strict=True):
            x = up(x, skip)
        logits: torch.Tensor = self.head(x)
        return logits


def _resolve_settings(settings: UNetSettings | None, overrides: dict[str, Any]) -> UNetSettings:
    """The settings with overrides applied and validated, or a one-line `ConfigError`."""
    base = settings.model_dump() if settings is not None else {}
    try:
        resolved = UNetSettings.model_validate({**base, **overrides})
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise ConfigError(
            f"U-Net setting {key!r}: {first['msg']} (got {first.get('input')!r})"
        ) from None
    # The head left to training's choice: a network on its own is multi-label.
    return (
        resolved if resolved.head is not None else resolved.model_copy(update={"head": "sigmoid"})
    )


def forward_flops_per_pixel(model: nn.Module, in_channels: int, size: int | None = None) -> float:
    """Convolution and linear FLOPs (2 x multiply-adds) of one forward pass, per input pixel.

    Counted by running a (1, in_channels, size, size) input through `model` with hooks, so it
    works for any model built of `Conv2d`, `ConvTranspose2d` and `Linear` layers. Normalization,
    activations and pooling are left out: they are memory-bound, not compute-bound. Padded
    convolutions cost the same per pixel at every size, so the smallest valid size is enough.
    """
    side = size if size is not None else int(getattr(model, "size_multiple", 64))
    total = 0.0

    def count(layer: nn.Module, inputs: Sequence[torch.Tensor], output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, nn.ConvTranspose2d):
            taps = layer.weight.shape[1] * layer.weight[0, 0].numel()
            total += 2.0 * inputs[0].numel() * taps
        elif isinstance(layer, nn.Conv2d):
            taps = layer.weight[0].numel()
            total += 2.0 * output.numel() * taps
        elif isinstance(layer, nn.Linear):
            total += 2.0 * output.numel() * layer.in_features

    handles = [
        layer.register_forward_hook(count)
        for layer in model.modules()
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d | nn.Linear)
    ]
    parameter = next(model.parameters())
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(
                torch.zeros(
                    1, in_channels, side, side, dtype=parameter.dtype, device=parameter.device
                )
            )
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total / (side * side)
