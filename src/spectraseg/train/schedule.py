"""Learning-rate schedules as pure functions of the step, plus the reduce-on-plateau counter.

The rate at any step follows from the settings and a few counts alone, so a resumed run picks
up exactly where it stopped, and a schedule can be plotted or tested without an optimizer. The
one schedule that depends on the past, reduce-on-plateau, keeps that past in `Plateau` (how many
times the rate was cut), which the checkpoint stores beside the optimizer.

Every schedule is given in epochs (a fraction of an epoch counts) so that it keeps its meaning
when the batch size or the number of patches per epoch changes. With
`schedule.decay_over_budget`, a run with a time budget (`train.max_minutes`) tells cosine how
much of the budget is spent, so that the decay ends when the minutes do (Li et al., "Budgeted
training", ICLR 2020).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from spectraseg.settings import Settings

__all__ = ["Plateau", "ScheduleSettings", "learning_rate"]


class ScheduleSettings(Settings):
    """How the learning rate changes over training (`train.schedule` in the config)."""

    name: Literal["constant", "step", "exponential", "cosine", "plateau"] = "cosine"
    """constant; step: x decay_factor every decay_every_epochs; exponential: the same decay
    spread smoothly; cosine: half a cosine from the base rate down to min_ratio x base at the last
    epoch; plateau: x decay_factor each time validation stops improving for patience_epochs."""
    warmup_epochs: float = Field(default=0.0, ge=0.0)
    """Linear ramp from near 0 to the scheduled rate; steadies Adam's first, noisy moments."""
    decay_every_epochs: float = Field(default=10.0, gt=0.0)
    decay_factor: float = Field(default=0.5, gt=0.0, le=1.0)
    min_ratio: float = Field(default=0.01, ge=0.0, le=1.0)
    """Cosine's final rate as a share of the base rate."""
    decay_over_budget: bool = False
    """With `train.max_minutes`, cosine decays over whichever runs out first, the epochs or the
    minutes, so the rate reaches its floor when the budget ends rather than at an epoch the
    budget never reaches. Off by default: on the Sentinel-2 set a 4-minute U-Net still far from
    converged scored 0.06 lower held-out with it (docs/benchmarks.md); try it for budgets long
    enough to converge. False: over the epochs alone (the rate a function of the step)."""
    patience_epochs: int = Field(default=3, ge=1)
    """Reduce-on-plateau: validations without improvement before the rate is cut."""


def learning_rate(
    step: int,
    settings: ScheduleSettings,
    *,
    base: float,
    steps_per_epoch: int,
    total_epochs: int,
    reductions: int = 0,
    budget_share: float = 0.0,
) -> float:
    """The learning rate for optimizer step `step` (0-based).

    Args:
        base: the rate the schedule starts from (`train.learning_rate`).
        total_epochs: the planned length of training, which cosine decays over.
        reductions: how many times reduce-on-plateau has cut the rate so far (`Plateau`).
        budget_share: the share of the time budget spent (0 to 1); cosine's progress is the
            larger of it and the share of `total_epochs` done.

    Example:
        >>> settings = ScheduleSettings(name="step", decay_every_epochs=2, decay_factor=0.1)
        >>> [learning_rate(s, settings, base=1.0, steps_per_epoch=1, total_epochs=6)
        ...  for s in range(5)]
        [1.0, 1.0, 0.1, 0.1, 0.010000000000000002]
    """
    epoch = step / max(1, steps_per_epoch)
    if settings.name == "constant":
        rate = base
    elif settings.name == "step":
        rate = base * settings.decay_factor ** math.floor(epoch / settings.decay_every_epochs)
    elif settings.name == "exponential":
        rate = base * settings.decay_factor ** (epoch / settings.decay_every_epochs)
    elif settings.name == "cosine":
        progress = min(1.0, max(epoch / max(1, total_epochs), budget_share))
        floor = base * settings.min_ratio
        rate = floor + (base - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        rate = base * settings.decay_factor**reductions
    if settings.warmup_epochs > 0 and epoch < settings.warmup_epochs:
        # Count the step itself, so that the first step already moves the weights.
        rate *= min(1.0, (step + 1) / (settings.warmup_epochs * max(1, steps_per_epoch)))
    return rate


@dataclass
class Plateau:
    """Counts validations without improvement and the rate cuts they caused.

    Example:
        >>> plateau = Plateau(patience=2)
        >>> [plateau.update(score) for score in (0.5, 0.4, 0.45, 0.3, 0.6)]
        [0, 0, 1, 1, 1]
    """

    patience: int
    best: float = -math.inf
    waited: int = 0
    reductions: int = 0

    def update(self, score: float) -> int:
        """Record one validation score (higher is better); returns the number of cuts so far."""
        if score > self.best:
            self.best = score
            self.waited = 0
        else:
            self.waited += 1
            if self.waited >= self.patience:
                self.reductions += 1
                self.waited = 0
        return self.reductions

    def state_dict(self) -> dict[str, float | int]:
        return {"best": self.best, "waited": self.waited, "reductions": self.reductions}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.best = float(state["best"])
        self.waited = int(state["waited"])
        self.reductions = int(state["reductions"])
