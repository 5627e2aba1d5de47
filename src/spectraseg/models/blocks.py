"""The building blocks of encoder-decoder segmentation models: convolution stacks and up-steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from spectraseg.errors import ConfigError

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "ConvBlock",
    "ConvOptions",
    "UpBlock",
    "Upsampling",
    "check_network_shape",
    "make_activation",
]

Activation = Literal["relu", "elu", "leaky_relu", "gelu"]
ACTIVATIONS: tuple[str, ...] = get_args(Activation)
Upsampling = Literal["transpose", "interpolate"]


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (one of `ACTIVATIONS`)."""
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "elu":
        return nn.ELU(inplace=True)
    if name == "leaky_relu":
        return nn.LeakyReLU(0.01, inplace=True)
    if name == "gelu":
        return nn.GELU()
    raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)}")


@dataclass(frozen=True)
class ConvOptions:
    """How every convolution stack of a model is built."""

    kernel_size: int = 3
    convs: int = 2
    batch_norm: bool = True
    activation: str = "relu"


class ConvBlock(nn.Sequential):
    """`options.convs` times [convolution, batch norm, activation], then optional spatial dropout.

    Padding keeps the height and width. With batch norm the convolutions have no bias (the norm's
    shift replaces it). Dropout drops whole feature maps (`Dropout2d`): neighbouring pixels of a
    map are strongly correlated, so dropping single pixels would barely regularize.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        options: ConvOptions = ConvOptions(),
        *,
        dropout: float = 0.0,
    ) -> None:
        layers: list[nn.Module] = []
        for index in range(options.convs):
            layers.append(
                nn.Conv2d(
                    in_channels if index == 0 else out_channels,
                    out_channels,
                    options.kernel_size,
                    padding=options.kernel_size // 2,
                    bias=not options.batch_norm,
                )
            )
            if options.batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(make_activation(options.activation))
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        super().__init__(*layers)


class UpBlock(nn.Module):
    """Double the resolution, join the encoder's skip connection, and convolve.

    "transpose" learns the upsampling (a 2x2 stride-2 transposed convolution to the skip's width,
    so the join has twice the skip's channels); "interpolate" repeats pixels (nearest neighbour,
    free of parameters) and lets the block's convolutions mix all channels, as the Keras U-Nets
    of the DSTL competition did.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        options: ConvOptions = ConvOptions(),
        *,
        upsampling: str = "transpose",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.up: nn.Module
        if upsampling == "transpose":
            self.up = nn.ConvTranspose2d(in_channels, skip_channels, kernel_size=2, stride=2)
            joined = 2 * skip_channels
        elif upsampling == "interpolate":
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            joined = in_channels + skip_channels
        else:
            raise ValueError(f"unknown upsampling {upsampling!r}; known: transpose, interpolate")
        self.block = ConvBlock(joined, out_channels, options, dropout=dropout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        joined = torch.cat([self.up(x), skip], dim=1)
        output: torch.Tensor = self.block(joined)
        return output


def check_network_shape(network: str, in_channels: int, num_classes: int, head: str | None) -> None:
    """Refuse inputs and outputs no network can have, in one line naming the network.

    Raises:
        ConfigError: no input channel, no class, or a softmax head over a single class.
    """
    if in_channels < 1 or num_classes < 1:
        raise ConfigError(
            f"{network} needs at least one input channel and one class, "
            f"got in_channels={in_channels}, num_classes={num_classes}"
        )
    if head == "softmax" and num_classes < 2:
        raise ConfigError(
            "a softmax head needs at least 2 classes (add a background class) "
            "or set model.head: sigmoid"
        )
