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
from spectraseg.data.split import ValidationWindow
from spectraseg.models.head import Head
from spectraseg.models.unet import probabilities
from spectraseg.predict.edge_margin import measure_edge_margin
from spectraseg.predict.tta import Model
from spectraseg.predict.tta_choice import choose_tta, measure_tta_jaccard
from spectraseg.train.loop import pad_to_multiple

__all__ = [
    "PredictionCost",
    "measure_prediction_cost",
    "touching_groups",
    "validation_canvases",
]

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
    """The validation area as images: each group of touching windows pasted into its bounding
    box (zeros where no window lies), so the edge margin can be probed with windows larger
    than the validation windows themselves.

    Groups rather than whole scenes: the windows kept of a large held-out scene (at most
    `data.split.max_windows`) lie scattered over it, and one box around them all would be the
    scene itself, in memory and through the network at once.
    """
    canvases = []
    for group in touching_groups(validation.windows):
        parts = [(validation.windows[i], validation.images[i]) for i in group]
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


def touching_groups(windows: Sequence[ValidationWindow]) -> list[list[int]]:
    """Positions of the windows grouped by scene and shared edges, groups in scene order.

    Example:
        >>> w = [ValidationWindow(0, 0, 0, 8, 8), ValidationWindow(0, 0, 8, 8, 8),
        ...      ValidationWindow(0, 40, 40, 8, 8), ValidationWindow(1, 0, 0, 8, 8)]
        >>> touching_groups(w)
        [[0, 1], [2], [3]]
    """
    parent = list(range(len(windows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(windows):
        for j in range(i):
            if _touch(a, windows[j]):
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(windows)):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda group: (windows[group[0]].scene, group[0]))


def _touch(a: ValidationWindow, b: ValidationWindow) -> bool:
    """Whether two windows of one scene share a piece of edge."""
    if a.scene != b.scene:
        return False
    rows_meet = a.row < b.row + b.height and b.row < a.row + a.height
    cols_meet = a.col < b.col + b.width and b.col < a.col + a.width
    side_by_side = rows_meet and (a.col + a.width == b.col or b.col + b.width == a.col)
    stacked = cols_meet and (a.row + a.height == b.row or b.row + b.height == a.row)
    return side_by_side or stacked


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
