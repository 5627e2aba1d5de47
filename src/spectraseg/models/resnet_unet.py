"""A U-Net whose encoder is a ResNet, so it can start from pretrained weights.

Transfer learning needs an encoder whose weights exist: torchvision's ResNets are the common
ones, so the encoder is `models/resnet.py` in their layout and `models/pretrained.py` fills it
from a local file (`model.encoder.weights`). The decoder is the U-Net's: five up-steps, each
joining the encoder's features of that resolution; the last joins the input bands themselves,
so full-resolution detail reaches the head although the ResNet's first feature map is 1/2 size.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field, ValidationError, field_validator
from torch import nn

from spectraseg.errors import ConfigError
from spectraseg.models.blocks import Activation, ConvOptions, UpBlock, Upsampling
from spectraseg.models.head import Head
from spectraseg.models.init import Initializer, init_weights
from spectraseg.models.resnet import EncoderName, ResNetEncoder
from spectraseg.models.unet import nearest_valid_size
from spectraseg.settings import Settings

__all__ = ["ENCODER_SIZE_MULTIPLE", "ResNetUNet", "ResNetUNetSettings"]

ENCODER_SIZE_MULTIPLE = 32
"""A ResNet halves the resolution five times (stem, max pooling, three strided stages)."""


class ResNetUNetSettings(Settings):
    """The architecture of a `ResNetUNet`: the encoder's depth and the decoder's widths."""

    encoder: EncoderName = "resnet34"
    decoder_filters: tuple[int, int, int, int, int] = (256, 128, 64, 32, 16)
    """Filters of the five up-steps, from 1/16 of the input side back to full resolution."""
    batch_norm: bool = True
    """In the decoder (the encoder always has it, as its pretrained weights expect)."""
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Share of the decoder's feature maps dropped in training."""
    activation: Activation = "relu"
    """The decoder's activation (the encoder's is ReLU, as pretrained)."""
    init: Initializer = "he_uniform"
    """How the decoder and a from-scratch encoder are initialized."""
    upsampling: Upsampling = "transpose"
    head: Head | None = None
    """sigmoid (classes may overlap) or softmax (exclusive classes). None: `model.head`, else
    chosen by training from the labels (`workflow/head_choice.py`); a network built on its own
    takes sigmoid."""

    @field_validator("decoder_filters")
    @classmethod
    def _positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(width < 1 for width in value):
            raise ValueError("every decoder width must be at least 1")
        return value


class ResNetUNet(nn.Module):
    """A U-Net with a ResNet-18/34/50 encoder for any number of bands and classes; logits out.

    `ResNetUNet(in_channels=8, num_classes=5)` has a ResNet-34 encoder; keyword arguments
    override `ResNetUNetSettings` fields (`ResNetUNet(8, 5, encoder="resnet50")`). The encoder is
    `self.encoder` (torchvision's names), which `models/pretrained.py` fills and training may
    freeze for the first epochs.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        settings: ResNetUNetSettings | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.settings = _resolve_settings(settings, overrides)
        if in_channels < 1 or num_classes < 1:
            raise ConfigError(
                f"a ResNet U-Net needs at least one input channel and one class, "
                f"got in_channels={in_channels}, num_classes={num_classes}"
            )
        if self.settings.head == "softmax" and num_classes < 2:
            raise ConfigError(
                "a softmax head needs at least 2 classes (add a background class) "
                "or set model.head: sigmoid"
            )
        self.in_channels = in_channels
        self.num_classes = num_classes
        settings = self.settings
        self.encoder = ResNetEncoder(settings.encoder, in_channels)
        options = ConvOptions(
            kernel_size=3,
            convs=2,
            batch_norm=settings.batch_norm,
            activation=settings.activation,
        )
        # Deepest first: layer3, layer2, layer1, the stem, then the input bands.
        skips = (*reversed(self.encoder.feature_channels[:-1]), in_channels)
        channels = self.encoder.feature_channels[-1]
        self.decoder = nn.ModuleList()
        for skip, width in zip(skips, settings.decoder_filters, strict=True):
            self.decoder.append(
                UpBlock(
                    channels,
                    skip,
                    width,
                    options,
                    upsampling=settings.upsampling,
                    dropout=settings.dropout,
                )
            )
            channels = width
        self.head = nn.Conv2d(channels, num_classes, kernel_size=1)
        init_weights(self, settings.init, activation=settings.activation)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this (32)."""
        return ENCODER_SIZE_MULTIPLE

    def check_input_size(self, height: int, width: int) -> None:
        """Raise a `ConfigError` naming the nearest valid size if 32 does not divide it."""
        multiple = self.size_multiple
        if height % multiple == 0 and width % multiple == 0:
            return
        suggestion = f"{nearest_valid_size(height, 5)} x {nearest_valid_size(width, 5)}"
        raise ConfigError(
            f"input of {height} x {width} px does not fit a ResNet U-Net: height and width must "
            f"be multiples of {multiple}; the nearest valid size is {suggestion} px. "
            "Change the patch or window size."
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels, H, W) -> (N, num_classes, H, W) logits."""
        self.check_input_size(x.shape[-2], x.shape[-1])
        features = self.encoder(x)
        y = features[-1]
        skips = [*reversed(features[:-1]), x]
        for up, skip in zip(self.decoder, skips, strict=True):
            y = up(y, skip)
        logits: torch.Tensor = self.head(y)
        return logits


def _resolve_settings(
    settings: ResNetUNetSettings | None, overrides: dict[str, Any]
) -> ResNetUNetSettings:
    """The settings with overrides applied and validated, or a one-line `ConfigError`."""
    base = settings.model_dump() if settings is not None else {}
    try:
        resolved = ResNetUNetSettings.model_validate({**base, **overrides})
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"ResNet U-Net setting {key!r}: {message} (got {first.get('input')!r})"
        ) from None
    # The head left to training's choice: a network on its own is multi-label.
    return (
        resolved if resolved.head is not None else resolved.model_copy(update={"head": "sigmoid"})
    )
