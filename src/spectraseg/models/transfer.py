"""Fine-tuning: the weights of a trained network carried over to a new one of the same kind.

`spectraseg train --init-from CKPT` starts a run on new data from a trained checkpoint. Every
tensor whose name and shape match is loaded; a changed class list gets a fresh head (the old
head's outputs mean other classes); other bands are refused unless asked for, and then the first
convolution is rebuilt as for pretrained encoders (`models/pretrained.py`): the filters of
bands the checkpoint knew are copied by name, the others start from their scaled mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from spectraseg.models.pretrained import adapt_first_convolution

__all__ = ["Transfer", "first_convolution", "transfer_weights"]

HEAD_PREFIX = "head."
"""Every registered network names its final 1x1 convolution `head`."""


@dataclass(frozen=True)
class Transfer:
    """What `transfer_weights` carried over: the tensors to load and the names left fresh."""

    weights: dict[str, torch.Tensor]
    fresh: tuple[str, ...]


def first_convolution(model: nn.Module) -> str:
    """The parameter name of the convolution that reads the input bands (the first in order).

    Example:
        >>> first_convolution(nn.Sequential(nn.Conv2d(4, 8, 3), nn.Conv2d(8, 2, 1)))
        '0.weight'
    """
    for name, layer in model.named_modules():
        if isinstance(layer, nn.Conv2d):
            return f"{name}.weight" if name else "weight"
    raise ValueError(f"{type(model).__name__} has no convolution")


def transfer_weights(
    model: nn.Module,
    source: Mapping[str, torch.Tensor],
    *,
    source_channels: Sequence[str],
    channels: Sequence[str],
    same_classes: bool,
) -> Transfer:
    """The tensors of `source` that fit `model`, with its first convolution adapted when the
    channels differ (the caller decides whether that is allowed).

    Args:
        source_channels: the input channels (bands, then indices) the source was trained on.
        channels: the input channels of `model`.
        same_classes: False gives the head fresh weights whatever its shape.
    """
    target = model.state_dict()
    first = first_convolution(model)
    weights: dict[str, torch.Tensor] = {}
    fresh: list[str] = []
    for name, value in target.items():
        given = source.get(name)
        if given is None or (not same_classes and name.startswith(HEAD_PREFIX)):
            fresh.append(name)
            continue
        if name == first and tuple(source_channels) != tuple(channels):
            given = adapt_first_convolution(given, channels, source_channels)
        if given.shape != value.shape:
            fresh.append(name)
            continue
        weights[name] = given.to(value.dtype)
    return Transfer(weights=weights, fresh=tuple(fresh))
