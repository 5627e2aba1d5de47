"""An exponential moving average of a model's weights: what validation, `best.pt` and
`last.pt` hold when `train.weight_average` is set.

Why: a run of a few minutes (a search trial, a CPU budget) ends wherever the last noisy step
left the weights, and its validation curve jumps from epoch to epoch, so `best.pt` is the peak
of noise as much as of learning. The average of the last few hundred steps' weights (Polyak
averaging) lies in a flatter spot: it scores steadier, and held-out data sees that.

The decay ramps up over the first steps, `min(decay, (1 + n) / (10 + n))` after `n` updates,
so that the random initial weights do not linger in a short run's average. Batch-norm running
statistics are averaged with the weights; integer buffers (batch counts) are copied.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["WeightAverage", "average_decay"]


def average_decay(decay: float, updates: int) -> float:
    """The decay of update number `updates` (1 for the first): `decay`, ramped up from 0.18."""
    return min(decay, (1 + updates) / (10 + updates))


class WeightAverage:
    """A copy of `model` whose weights follow the model's as an exponential moving average."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, updates: int) -> None:
        """Move the average towards `model`'s weights after update number `updates`."""
        weight = 1.0 - average_decay(self.decay, updates)
        current = model.state_dict()
        averaged, latest = [], []
        for name, value in self.module.state_dict().items():
            if value.is_floating_point():
                averaged.append(value)
                latest.append(current[name].to(value.dtype))
            else:
                value.copy_(current[name])
        if averaged:
            torch._foreach_lerp_(averaged, latest, weight)
