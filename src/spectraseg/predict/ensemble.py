"""What `spectraseg predict` runs: one checkpoint, a run folder, or a weighted ensemble of them.

An ensemble is a YAML file listing checkpoints (paths relative to the file) and weights:
```yaml
members:
  - {path: runs/unet_a, weight: 2}
  - {path: runs/unet_b/best.pt}     # weight 1
thresholds: [0.4, 0.5]              # optional; default: the members' weighted mean
```
Its prediction is the weighted mean of the members' probabilities. Members must share the
class list and head; each may take the bands in its own order (they must have the same bands).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, ValidationError

from spectraseg.errors import ConfigError
from spectraseg.io.yaml_file import read_yaml
from spectraseg.models.card import ModelCard
from spectraseg.predict.compiled import compile_model
from spectraseg.predict.predictor import build_predictor
from spectraseg.predict.tta import Model
from spectraseg.settings import Settings
from spectraseg.train.checkpoint import load_checkpoint

__all__ = [
    "ENSEMBLE_SUFFIXES",
    "EnsembleMember",
    "EnsemblePredictor",
    "EnsembleSettings",
    "build_ensemble",
]

log = logging.getLogger(__name__)

ENSEMBLE_SUFFIXES = (".yaml", ".yml")


class EnsembleMember(Settings):
    path: Path
    """A checkpoint file or run folder, relative to the ensemble file."""
    weight: float = Field(default=1.0, gt=0.0)


class EnsembleSettings(Settings):
    """An ensemble file's content."""

    members: tuple[EnsembleMember, ...] = Field(min_length=1)
    thresholds: tuple[float, ...] | None = None
    """Per-class thresholds for the mask; default: the members' weighted mean."""


def _read_settings(source: Path) -> EnsembleSettings:
    raw: Any = read_yaml(source, "ensemble")
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected 'members: [{{path, weight}}, ...]'.")
    try:
        return EnsembleSettings.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "members"
        raise ConfigError(f"{source}: {where}: {first['msg']}.") from None


class EnsemblePredictor:
    """The weighted mean of several predictors' probabilities, each fed its own band order."""

    def __init__(
        self, members: Sequence[Model], weights: Sequence[float], band_orders: Sequence[list[int]]
    ) -> None:
        total = float(sum(weights))
        self.members = list(members)
        self.weights = [w / total for w in weights]
        self.band_orders = [list(order) for order in band_orders]

    def compiled(self) -> EnsemblePredictor:
        """The same ensemble with each member's network compiled (`compiled.py`)."""
        members = [compile_model(member) for member in self.members]
        return EnsemblePredictor(members, self.weights, self.band_orders)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        parts = zip(self.members, self.weights, self.band_orders, strict=True)
        return torch.stack(
            [self._member(member, weight, order, batch) for member, weight, order in parts]
        ).sum(dim=0)

    @staticmethod
    def _member(model: Model, weight: float, order: list[int], batch: torch.Tensor) -> torch.Tensor:
        bands = batch if order == list(range(batch.shape[1])) else batch[:, order]
        return model(bands).float() * weight


def build_ensemble(path: str | os.PathLike[str], device: torch.device) -> tuple[Model, ModelCard]:
    """An ensemble YAML as one model: members loaded, checked to fit together, and averaged.

    Its card is the first member's, with the ensemble's thresholds, the smallest patch, the
    widest edge margin and size multiple, and no TTA scores (they belong to one model).
    """
    source = Path(path)
    settings = _read_settings(source)
    cards = [load_checkpoint(source.parent / m.path) for m in settings.members]
    first = cards[0].card
    orders: list[list[int]] = []
    for member, checkpoint in zip(settings.members, cards, strict=True):
        card = checkpoint.card
        where = f"{source}: member {member.path}"
        if card.class_names != first.class_names or card.head != first.head:
            raise ConfigError(
                f"{where}: classes {', '.join(card.class_names)} ({card.head}) differ "
                f"from the first member's {', '.join(first.class_names)} ({first.head}); "
                "ensemble members must predict the same classes."
            )
        if sorted(card.band_names) != sorted(first.band_names):
            raise ConfigError(
                f"{where}: bands {', '.join(card.band_names)} differ from the first "
                f"member's {', '.join(first.band_names)}; ensemble members must share their bands."
            )
        orders.append([first.band_names.index(name) for name in card.band_names])
    weights = [m.weight for m in settings.members]
    if settings.thresholds is not None:
        if len(settings.thresholds) != first.num_classes:
            raise ConfigError(
                f"{source}: {len(settings.thresholds)} thresholds for {first.num_classes} classes "
                f"({', '.join(first.class_names)})."
            )
        thresholds = settings.thresholds
    else:
        stacked = np.array([c.card.thresholds for c in cards], dtype=np.float64)
        thresholds = tuple(float(t) for t in np.average(stacked, axis=0, weights=weights))
    predictor = EnsemblePredictor([build_predictor(c, device) for c in cards], weights, orders)
    log.info("%s: ensemble of %d models", source, len(cards))
    margins = [c.card.edge_margin_px for c in cards]
    card = first.model_copy(
        update={
            "thresholds": thresholds,
            "patch_px": min(c.card.patch_px for c in cards),
            "size_multiple": math.lcm(*(c.card.size_multiple for c in cards)),
            "edge_margin_px": None if None in margins else max(m for m in margins if m is not None),
            "tta_jaccard": None,
            "per_pixel": all(c.card.per_pixel for c in cards),
        }
    )
    return predictor, card
