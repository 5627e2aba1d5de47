"""Pretrained encoder weights: torchvision-layout state dicts fitted to any band list.

ImageNet weights know three bands. Multispectral inputs have 4 to 16 or more, so the first
convolution is rebuilt for the run's channels, as torchgeo and the DSTL solutions did: the
pretrained filter of red, green and blue goes to the channels named so, and every other channel
(near infrared, short-wave infrared, indices) gets the mean of the three, scaled by 3 / N so the
channels added beyond three do not swamp the response the later layers were trained on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from pydantic import Field
from torch import nn

from spectraseg.errors import CheckpointError
from spectraseg.settings import Settings

__all__ = [
    "RGB",
    "EncoderSettings",
    "adapt_first_convolution",
    "load_encoder_weights",
    "set_trainable",
]


class EncoderSettings(Settings):
    """Where a pretrained encoder starts (`model.encoder` in the config; `resnet-unet` only).

    Not part of the architecture: the card records the network, not where its weights began.
    """

    weights: Path | None = None
    """A local state dict in torchvision's layout (`resnet34-*.pth`); None: random weights.
    Nothing is ever downloaded."""
    freeze_epochs: int = Field(default=0, ge=0)
    """Epochs that train only the decoder and head, so their random weights do not wreck the
    pretrained encoder with large early gradients; then everything trains."""


RGB = ("red", "green", "blue")
"""The band names pretrained first-layer filters are matched to, in their order."""
FIRST_CONVOLUTION = "conv1.weight"
CLASSIFIER_PREFIX = "fc."


def adapt_first_convolution(
    weight: torch.Tensor,
    channel_names: Sequence[str],
    source_names: Sequence[str] = RGB,
) -> torch.Tensor:
    """(out, S, k, k) filters for `source_names` -> (out, N, k, k) filters for `channel_names`.

    A channel with the name of a source channel (any case) gets its filter as is; the others
    get the mean of the S source filters times S / N. The default sources are pretrained RGB
    filters; fine-tuning with other bands (`--adapt-bands`) passes the checkpoint's channels.

    Example:
        >>> weight = torch.tensor([1.0, 2.0, 3.0]).reshape(1, 3, 1, 1)
        >>> adapt_first_convolution(weight, ["blue", "nir", "red"]).flatten().tolist()
        [3.0, 2.0, 1.0]
    """
    sources = [name.lower() for name in source_names]
    if weight.ndim != 4 or weight.shape[1] != len(sources):
        raise ValueError(
            f"expected (out, {len(sources)}, k, k) filters for {', '.join(source_names)}, "
            f"got {tuple(weight.shape)}"
        )
    mean = weight.mean(dim=1) * (len(sources) / len(channel_names))
    columns = []
    for name in channel_names:
        lower = name.lower()
        columns.append(weight[:, sources.index(lower)] if lower in sources else mean)
    return torch.stack(columns, dim=1).clone()


def load_encoder_weights(
    encoder: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    channel_names: Sequence[str],
    source: str,
) -> None:
    """Fill every weight of `encoder` from a state dict in torchvision's layout.

    The classifier (`fc.*`) is ignored; the first convolution is adapted to `channel_names`
    when it has three input channels and the encoder another count (or other bands).

    Raises:
        CheckpointError: one line naming `source` and the first missing or unexpected key, or
            the first tensor whose shape differs.
    """
    expected = encoder.state_dict()
    given = {key: value for key, value in state.items() if not key.startswith(CLASSIFIER_PREFIX)}
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    name = getattr(encoder, "name", type(encoder).__name__)
    if missing or unexpected:
        first = f"missing key {missing[0]!r}" if missing else f"unexpected key {unexpected[0]!r}"
        raise CheckpointError(
            f"{source}: the weights do not fit a {name} encoder: {first} ({len(missing)} "
            f"missing, {len(unexpected)} unexpected); expected a torchvision {name} state dict."
        )
    fitted = dict(given)
    first_conv = given.get(FIRST_CONVOLUTION)
    target = expected.get(FIRST_CONVOLUTION)
    if (
        first_conv is not None
        and target is not None
        and first_conv.ndim == 4
        and first_conv.shape[1] == 3
        and len(channel_names) == target.shape[1]
        and _needs_adapting(channel_names)
    ):
        fitted[FIRST_CONVOLUTION] = adapt_first_convolution(first_conv, channel_names)
    for key, value in expected.items():
        if fitted[key].shape != value.shape:
            raise CheckpointError(
                f"{source}: {key!r} has shape {tuple(fitted[key].shape)}, the {name} encoder "
                f"needs {tuple(value.shape)}."
            )
    encoder.load_state_dict({key: value.to(expected[key].dtype) for key, value in fitted.items()})


def _needs_adapting(channel_names: Sequence[str]) -> bool:
    """Three channels with none named red, green or blue are taken to be RGB in that order
    (a plain photo); any other list is matched by name."""
    named = any(name.lower() in RGB for name in channel_names)
    return named or len(channel_names) != len(RGB)


def set_trainable(module: nn.Module, trainable: bool) -> None:
    """Let the optimizer change `module`'s parameters, or keep them as they are.

    Frozen parameters get no gradient, so optimizers skip them (weight decay included). Batch
    norm statistics still follow the data, which suits inputs unlike the pretraining images.
    """
    for parameter in module.parameters():
        parameter.requires_grad_(trainable)
