"""ResNet-18/34/50 (He et al. 2016) as a feature encoder, written here in torchvision's layout.

The module and parameter names match torchvision's `resnet18/34/50` (`conv1`, `bn1`,
`layer1.0.conv1`, `layer2.0.downsample.0`, ...; v1.5: a bottleneck block strides in its 3x3
convolution), so a state dict saved from torchvision loads with `load_state_dict` after dropping
the classifier (`fc.*`). Neither torchvision nor timm is imported: pretrained weights come from a
local file (`models/pretrained.py`), and nothing is downloaded.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

__all__ = ["ENCODER_LAYOUTS", "EncoderName", "ResNetEncoder"]

EncoderName = Literal["resnet18", "resnet34", "resnet50"]
# Blocks per stage and whether they are bottleneck blocks (1x1, 3x3, 1x1 with 4x expansion).
ENCODER_LAYOUTS: dict[str, tuple[tuple[int, int, int, int], bool]] = {
    "resnet18": ((2, 2, 2, 2), False),
    "resnet34": ((3, 4, 6, 3), False),
    "resnet50": ((3, 4, 6, 3), True),
}
_STAGE_WIDTHS = (64, 128, 256, 512)


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions and the identity (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = _shortcut(in_channels, width * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        result: torch.Tensor = self.relu(out + identity)
        return result


class _Bottleneck(nn.Module):
    """1x1 down, 3x3 (strided), 1x1 up to 4x the width, and the identity (ResNet-50)."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int) -> None:
        super().__init__()
        self.conv1 = _conv1x1(in_channels, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(in_channels, width * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        result: torch.Tensor = self.relu(out + identity)
        return result


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """A 1x1 projection where the block changes the width or the resolution, else None."""
    if stride == 1 and in_channels == out_channels:
        return None
    return nn.Sequential(_conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class ResNetEncoder(nn.Module):
    """A ResNet without its classifier, returning the features of every resolution.

    `forward` returns five maps at 1/2, 1/4, 1/8, 1/16 and 1/32 of the input side (the stem
    after its activation, then `layer1` to `layer4`), whose channels are `feature_channels`;
    inputs must therefore be multiples of 32.
    """

    def __init__(self, name: EncoderName, in_channels: int) -> None:
        super().__init__()
        if name not in ENCODER_LAYOUTS:
            raise ValueError(f"unknown encoder {name!r}; known: {', '.join(ENCODER_LAYOUTS)}")
        self.name = name
        self.in_channels = in_channels
        counts, bottleneck = ENCODER_LAYOUTS[name]
        block = _Bottleneck if bottleneck else _BasicBlock
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = 64
        stages: list[nn.Sequential] = []
        for index, (count, width) in enumerate(zip(counts, _STAGE_WIDTHS, strict=True)):
            stride = 1 if index == 0 else 2
            blocks: list[nn.Module] = []
            for position in range(count):
                blocks.append(block(channels, width, stride if position == 0 else 1))
                channels = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        expansion = block.expansion
        self.feature_channels = (64, *(width * expansion for width in _STAGE_WIDTHS))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))
        features = [stem]
        x = self.maxpool(stem)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            features.append(x)
        return features
