"""What a trained network's predictions cost, measured once at the end of training.

The run stores two measurements with the model so that prediction can spend no more than the
model needs (`choices.py`): the edge margin (`edge_margin.py`), measured on the validation area
reassembled from its windows, and the validation Jaccard with 1, 2, 4 and 8 TTA passes
(`tta_choice.py`), measured on the validation windows with the tuned thresholds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from spectraseg.data.dataset import ValidationSet
from spectraseg.models.head import Head
from spectraseg.models.unet import probabilities
from spectraseg.predict.edge_margin import measure_edge_margin
from spectraseg.predict.tta import Model
from spectraseg.predict.tta_choice import choose_tta, measure_tta_jaccard
from spectraseg.train.loop import pad_to_multiple

__all__ = ["PredictionCost", "measure_prediction_cost", "validation_canvases"]

log = logging.getLogger(__name__)

# Windows the edge margin is probed with: wide enough to see margins of a hundred pixels, which
# is what a trained depth-4 U-Net reaches at the tolerance.
PROBE_WINDOW_PX = 256


@dataclass(frozen=True)
class PredictionCost:
    """The measurements a checkpoint stores as `edge_margin_px` and `tta_jaccard`."""

    edge_margin_px: int | None
    tta_jaccard: dict[int, float]


def validation_canvases(validation: ValidationSet) -> list[np.ndarray]:
    """The validation area of each scene as one image: its windows pasted into their bounding
    box (zeros where no window lies), so the edge margin can be probed with windows larger
    than the validation windows themselves."""
    canvases = []
    for scene in sorted({w.scene for w in validation.windows}):
        parts = [
            (w, image)
            for w, image in zip(validation.windows, validation.images, strict=True)
            if w.scene == scene
        ]
        top = min(w.row for w, _ in parts)
        left = min(w.col for w, _ in parts)
        bottom = max(w.row + w.height for w, _ in parts)
        right = max(w.col + w.width for w, _ in parts)
        canvas = np.zeros((parts[0][1].shape[0], bottom - top, right - left), dtype=np.float32)
        for w, image in parts:
            rows = slice(w.row - top, w.row - top + w.height)
            canvas[:, rows, w.col - left : w.col - left + w.width] = image
        canvases.append(canvas)
    return canvases


def _probabilities_of(network: nn.Module, head: Head, size_multiple: int) -> Model:
    """The network as a callable on normalized inputs of any size, returning probabilities."""
    parameter = next(network.parameters())

    def predict(batch: torch.Tensor) -> torch.Tensor:
        height, width = batch.shape[-2:]
        padded = pad_to_multiple(batch.to(parameter.device), size_multiple)
        logits = network(padded)[..., :height, :width].float()
        return probabilities(logits, head).cpu()

    return predict


def measure_prediction_cost(
    network: nn.Module,
    validation: ValidationSet,
    *,
    head: Head,
    size_multiple: int,
    thresholds: Sequence[float],
) -> PredictionCost:
    """Edge margin and TTA Jaccard of `network` (in eval mode here) on the validation set."""
    was_training = network.training
    network.eval()
    try:
        model = _probabilities_of(network, head, size_multiple)
        margin = measure_edge_margin(
            model,
            validation_canvases(validation),
            window_px=PROBE_WINDOW_PX,
            size_multiple=size_multiple,
        )
        tta_jaccard = measure_tta_jaccard(model, validation, thresholds)
    finally:
        network.train(was_training)
    chosen, why = choose_tta(tta_jaccard)
    log.info(
        "prediction cost: edge margin %s; validation Jaccard with 1/2/4/8 TTA passes %s; "
        "--tta auto takes %d (%s)",
        "not measurable (50% overlap)" if margin is None else f"{margin} px",
        " / ".join(f"{tta_jaccard[n]:.4f}" for n in sorted(tta_jaccard)),
        chosen,
        why,
    )
    return PredictionCost(edge_margin_px=margin, tta_jaccard=tta_jaccard)
