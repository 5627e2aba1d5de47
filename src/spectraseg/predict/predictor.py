"""Predictors: a checkpoint turned into the callable `predict_raster` feeds raw bands to.

Each model kind has its own predictor; all of them append the checkpoint's indices and apply its
normalization exactly as training did (`_Preprocess`), so callers pass raw bands in the
checkpoint's `band_names` order with NaN for invalid pixels and get (N, K, h, w) probabilities.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Protocol, cast

import numpy as np
import torch
from torch import nn

from spectraseg.data.indices import add_indices
from spectraseg.data.normalize import BandStats, normalize
from spectraseg.errors import CheckpointError, ConfigError
from spectraseg.models.card import ModelCard
from spectraseg.models.registry import build_model, model_names
from spectraseg.models.unet import probabilities
from spectraseg.train.checkpoint import Checkpoint
from spectraseg.train.forest import ForestModel
from spectraseg.train.index_threshold import IndexThresholdModel
from spectraseg.train.loop import pad_to_multiple

__all__ = ["PREDICTORS", "Predictor", "build_predictor"]


class Predictor(Protocol):
    """Raw bands in, probabilities out: what `predict_raster` calls on each batch of windows."""

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) float32 raw bands in `band_names` order, NaN where invalid ->
        (N, K, h, w) float32 probabilities."""
        ...


class _Preprocess:
    """Raw bands -> the model's input: indices appended, then normalized, as in training."""

    def __init__(self, card: ModelCard) -> None:
        self.band_names = card.band_names
        self.indices = card.indices
        try:
            self.stats = BandStats.from_dict(card.normalization.stats, source="checkpoint")
        except ConfigError as error:
            raise CheckpointError(str(error)) from None
        self.method = card.normalization.method

    def __call__(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(C, h, w) raw bands, NaN where invalid -> (normalized input, valid (h, w))."""
        valid = np.isfinite(raw).all(axis=0)
        image, names, valid = add_indices(
            raw,
            self.band_names,
            valid,
            self.indices.names,
            custom=self.indices.custom,
        )
        return normalize(image, self.stats, self.method, band_names=names, valid=valid), valid


class _NetworkPredictor:
    """A network checkpoint (U-Net, FC-DenseNet) as a `Predictor`; any window size works
    (padded to the model's size multiple)."""

    def __init__(self, checkpoint: Checkpoint, device: torch.device) -> None:
        self.preprocess = _Preprocess(checkpoint.card)
        card = checkpoint.card
        self.head = card.head
        self.device = device
        try:
            model = build_model(card.model, card.in_channels, card.num_classes, card.model_settings)
            model.load_state_dict(checkpoint.weights)
        except (RuntimeError, ConfigError) as error:
            reason = str(error).splitlines()[0]
            raise CheckpointError(
                f"checkpoint weights do not fit its {card.model} settings ({reason})."
            ) from None
        self.multiple = int(getattr(model, "size_multiple", 1))
        # Channels-last convolutions are about 1.45x faster on CPU (docs/benchmarks.md), and
        # the layout cuDNN's half-precision kernels read natively on a GPU.
        self.memory_format = torch.channels_last
        # Module.to accepts memory_format at run time; torch's overloads do not declare it.
        model.to(device, memory_format=self.memory_format)  # type: ignore[call-overload]
        self.model = model.eval()

    def compiled(self) -> _NetworkPredictor:
        """This predictor with its network through `torch.compile` for inference.

        Inductor's freezing folds the weights and batch norm into the compiled graph (1.15x
        to 1.2x eager channels-last on the development CPU). The preprocessing stays eager
        (numpy would break the graph anyway).
        """
        twin = copy.copy(self)
        twin.model = cast(
            nn.Module, torch.compile(self.model, dynamic=False, options={"freezing": True})
        )
        return twin

    @torch.no_grad()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        height, width = batch.shape[-2:]
        inputs = np.stack([self.preprocess(raw)[0] for raw in batch.detach().cpu().numpy()])
        tensor = torch.from_numpy(inputs).to(self.device)
        padded = pad_to_multiple(tensor, self.multiple).contiguous(memory_format=self.memory_format)
        logits = self.model(padded)[..., :height, :width].float()
        return probabilities(logits, self.head).contiguous().to(batch.device)


class _ForestPredictor:
    """A random-forest checkpoint as a `Predictor` (numpy on the CPU whatever the device)."""

    def __init__(self, checkpoint: Checkpoint, device: torch.device) -> None:
        del device  # the forest walks its node arrays in numpy
        self.preprocess = _Preprocess(checkpoint.card)
        self.forest = ForestModel.from_arrays(
            {key: np.asarray(value) for key, value in checkpoint.weights.items()}
        )

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        outputs = []
        for raw in batch.detach().cpu().numpy():
            image, valid = self.preprocess(raw)
            probs = self.forest.predict_image(image)
            probs[:, ~valid] = 0.0
            outputs.append(probs)
        return torch.from_numpy(np.stack(outputs)).to(batch.device)


class _IndexThresholdPredictor:
    """An index-threshold checkpoint as a `Predictor` (numpy on the CPU)."""

    def __init__(self, checkpoint: Checkpoint, device: torch.device) -> None:
        del device  # a comparison per class and pixel needs no accelerator
        self.preprocess = _Preprocess(checkpoint.card)
        self.model = IndexThresholdModel.from_arrays(
            {key: np.asarray(value) for key, value in checkpoint.weights.items()},
            channel_names=checkpoint.card.channel_names,
        )

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        outputs = []
        for raw in batch.detach().cpu().numpy():
            image, valid = self.preprocess(raw)
            probs = self.model.predict_image(image)
            probs[:, ~valid] = 0.0
            outputs.append(probs)
        return torch.from_numpy(np.stack(outputs)).to(batch.device)


PREDICTORS: dict[str, Callable[[Checkpoint, torch.device], Predictor]] = {
    **{name: _NetworkPredictor for name in model_names()},
    "random-forest": _ForestPredictor,
    "index-threshold": _IndexThresholdPredictor,
}


def build_predictor(checkpoint: Checkpoint, device: torch.device) -> Predictor:
    """The callable mapping raw bands to probabilities for this checkpoint's model.

    It appends the checkpoint's indices and applies its normalization itself, so callers feed
    raw bands in `checkpoint.card.band_names` order with NaN for invalid pixels.

    Raises:
        CheckpointError: the model kind is unknown or its weights do not fit its settings.
    """
    if checkpoint.card.model not in PREDICTORS:
        raise CheckpointError(
            f"checkpoint model {checkpoint.card.model!r} is unknown to this spectraseg; "
            f"known: {', '.join(PREDICTORS)}."
        )
    return PREDICTORS[checkpoint.card.model](checkpoint, device)
