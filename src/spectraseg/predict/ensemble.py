"""What `spectraseg predict` runs: one checkpoint, a run folder, or a weighted ensemble of them.

An ensemble is a YAML file listing checkpoints (paths relative to the file) and weights:
```yaml
members:
  - {path: runs/unet_a, weight: 2}
  - {path: runs/unet_b/best.pt}     # weight 1
thresholds: [0.4, 0.5]              # optional; default: the members' weighted mean
```
Its classes are the union of the members' classes, in the order they first appear; each class is
the weighted mean of the probabilities of the members that predict it. So members with the same
classes average, and one binary model per class (`spectraseg train --per-class`, whose run
folder holds `ensemble.yaml`) gives each class from its own model. A class has one classes.yaml
id in every member; members share their head, and members with different class lists need
sigmoid heads (a softmax sums to 1 over its own classes only). Each member may take the bands in
its own order (they must have the same bands) and may differ in architecture.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, ValidationError

from spectraseg.errors import ConfigError
from spectraseg.io.yaml_file import read_yaml
from spectraseg.models.card import CardClass, ModelCard
from spectraseg.predict.compiled import compile_model
from spectraseg.predict.predictor import build_predictor
from spectraseg.predict.tta import Model
from spectraseg.settings import Settings
from spectraseg.train.checkpoint import Checkpoint, load_checkpoint

__all__ = [
    "ENSEMBLE_FILE",
    "ENSEMBLE_SUFFIXES",
    "EnsembleMember",
    "EnsemblePredictor",
    "EnsembleSettings",
    "build_ensemble",
    "ensemble_card",
    "ensemble_file",
]

log = logging.getLogger(__name__)

ENSEMBLE_SUFFIXES = (".yaml", ".yml")
ENSEMBLE_FILE = "ensemble.yaml"
"""The ensemble a run folder of per-class models holds (`workflow/per_class.py`)."""


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
    """Each class the weighted mean of the members predicting it, each member fed its own band
    order and its outputs placed at its classes' positions in the ensemble's class list."""

    def __init__(
        self,
        members: Sequence[Model],
        weights: Sequence[float],
        band_orders: Sequence[list[int]],
        class_positions: Sequence[list[int]],
    ) -> None:
        self.members = list(members)
        self.weights = [float(w) for w in weights]
        self.band_orders = [list(order) for order in band_orders]
        self.class_positions = [list(positions) for positions in class_positions]
        self.num_classes = 1 + max(max(positions) for positions in self.class_positions)
        totals = [0.0] * self.num_classes
        for weight, positions in zip(self.weights, self.class_positions, strict=True):
            for k in positions:
                totals[k] += weight
        self._totals = torch.tensor(totals, dtype=torch.float32).view(1, -1, 1, 1)

    def compiled(self) -> EnsemblePredictor:
        """The same ensemble with each member's network compiled (`compiled.py`)."""
        members = [compile_model(member) for member in self.members]
        return EnsemblePredictor(members, self.weights, self.band_orders, self.class_positions)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        shape = (batch.shape[0], self.num_classes, *batch.shape[2:])
        total = torch.zeros(shape, dtype=torch.float32, device=batch.device)
        parts = zip(self.members, self.weights, self.band_orders, self.class_positions, strict=True)
        for model, weight, order, positions in parts:
            bands = batch if order == list(range(batch.shape[1])) else batch[:, order]
            total[:, positions] += model(bands).float() * weight
        return total / self._totals.to(batch.device)


def ensemble_file(path: str | os.PathLike[str]) -> Path | None:
    """The ensemble file `path` names, if it names one: a YAML file, or a folder holding an
    `ensemble.yaml` and no `best.pt` (a `spectraseg train --per-class` run folder)."""
    source = Path(path)
    if source.suffix.lower() in ENSEMBLE_SUFFIXES:
        return source
    if source.is_dir() and not (source / "best.pt").exists() and (source / ENSEMBLE_FILE).is_file():
        return source / ENSEMBLE_FILE
    return None


@dataclass(frozen=True)
class _Members:
    """An ensemble file read: its members' checkpoints and how they fit into one card."""

    checkpoints: list[Checkpoint]
    weights: list[float]
    band_orders: list[list[int]]
    class_positions: list[list[int]]
    card: ModelCard


def _class_union(
    source: Path, settings: EnsembleSettings, cards: Sequence[ModelCard]
) -> tuple[list[CardClass], list[list[int]]]:
    """The classes of all members in order of first appearance, and each member's positions
    in that list; a class must keep its classes.yaml id across members."""
    union: list[CardClass] = []
    positions: list[list[int]] = []
    for member, card in zip(settings.members, cards, strict=True):
        where = f"{source}: member {member.path}"
        placed = []
        for spec in card.classes:
            names = [c.name for c in union]
            if spec.name in names:
                known = union[names.index(spec.name)]
                if known.id != spec.id:
                    raise ConfigError(
                        f"{where}: class {spec.name} has id {spec.id}, an earlier member gives "
                        f"it id {known.id}; train the members with the same classes.yaml."
                    )
                placed.append(names.index(spec.name))
                continue
            clash = next((c for c in union if c.id == spec.id), None)
            if clash is not None:
                raise ConfigError(
                    f"{where}: class {spec.name} has id {spec.id}, which is {clash.name}'s in an "
                    "earlier member; train the members with the same classes.yaml."
                )
            union.append(spec)
            placed.append(len(union) - 1)
        positions.append(placed)
    return union, positions


def _check_heads(source: Path, settings: EnsembleSettings, cards: Sequence[ModelCard]) -> None:
    first = cards[0]
    for member, card in zip(settings.members, cards, strict=True):
        where = f"{source}: member {member.path}"
        if card.head != first.head:
            raise ConfigError(
                f"{where}: a {card.head} head, the first member's is {first.head}; ensemble "
                "members must share their head."
            )
        if card.class_names != first.class_names and card.head == "softmax":
            raise ConfigError(
                f"{where}: classes {', '.join(card.class_names)} differ from the first member's "
                f"{', '.join(first.class_names)}, and softmax heads can only average the same "
                "classes; train the members with sigmoid heads."
            )
        if sorted(card.band_names) != sorted(first.band_names):
            raise ConfigError(
                f"{where}: bands {', '.join(card.band_names)} differ from the first "
                f"member's {', '.join(first.band_names)}; ensemble members must share their bands."
            )


def _read_members(path: str | os.PathLike[str]) -> _Members:
    source = Path(path)
    settings = _read_settings(source)
    checkpoints = [load_checkpoint(source.parent / m.path) for m in settings.members]
    cards = [c.card for c in checkpoints]
    _check_heads(source, settings, cards)
    classes, positions = _class_union(source, settings, cards)
    first = cards[0]
    weights = [m.weight for m in settings.members]
    if settings.thresholds is not None:
        if len(settings.thresholds) != len(classes):
            raise ConfigError(
                f"{source}: {len(settings.thresholds)} thresholds for {len(classes)} classes "
                f"({', '.join(c.name for c in classes)})."
            )
        thresholds = settings.thresholds
    else:
        thresholds = _mean_thresholds(cards, weights, positions, len(classes))
    margins = [c.edge_margin_px for c in cards]
    card = first.model_copy(
        update={
            "classes": tuple(classes),
            "thresholds": thresholds,
            "patch_px": min(c.patch_px for c in cards),
            "size_multiple": math.lcm(*(c.size_multiple for c in cards)),
            "edge_margin_px": None if None in margins else max(m for m in margins if m is not None),
            "tta_jaccard": _mean_tta_jaccard(cards, weights),
            "per_pixel": all(c.per_pixel for c in cards),
        }
    )
    return _Members(
        checkpoints=checkpoints,
        weights=weights,
        band_orders=[[first.band_names.index(name) for name in c.band_names] for c in cards],
        class_positions=positions,
        card=card,
    )


def _mean_thresholds(
    cards: Sequence[ModelCard],
    weights: Sequence[float],
    positions: Sequence[list[int]],
    count: int,
) -> tuple[float, ...]:
    """Each class's threshold: the weighted mean of the tuned thresholds of its members."""
    sums = np.zeros(count)
    totals = np.zeros(count)
    for card, weight, placed in zip(cards, weights, positions, strict=True):
        for threshold, k in zip(card.thresholds, placed, strict=True):
            sums[k] += weight * threshold
            totals[k] += weight
    return tuple(float(t) for t in sums / totals)


def _mean_tta_jaccard(
    cards: Sequence[ModelCard], weights: Sequence[float]
) -> dict[int, float] | None:
    """The ensemble's validation Jaccard per TTA count, estimated as its members' weighted mean.

    Each member measured its own Jaccard with 1, 2, 4 and 8 passes. For per-class models (one
    member per class) the mean is the ensemble's mean Jaccard over classes; for members sharing
    classes it is an estimate. Without it, `--tta auto` would give an ensemble 8 passes of
    every member even when none of them gains from more than one. None unless every member
    measured the same counts.
    """
    scores = [card.tta_jaccard for card in cards]
    if any(not score for score in scores):
        return None
    counts = set(scores[0] or {})
    if any(set(score or {}) != counts for score in scores):
        return None
    total = sum(weights)
    return {
        count: sum(w * (s or {})[count] for w, s in zip(weights, scores, strict=True)) / total
        for count in sorted(counts)
    }


def ensemble_card(path: str | os.PathLike[str]) -> ModelCard:
    """The card an ensemble file presents (see `build_ensemble`), without building networks."""
    return _read_members(path).card


def build_ensemble(path: str | os.PathLike[str], device: torch.device) -> tuple[Model, ModelCard]:
    """An ensemble YAML as one model: members loaded, checked to fit together, and merged.

    Its card is the first member's, with the union of the classes, the ensemble's thresholds,
    the smallest patch, the widest edge margin and size multiple, and its members' weighted mean
    validation Jaccard per TTA count (`--tta auto` chooses from it).
    """
    members = _read_members(path)
    predictor = EnsemblePredictor(
        [build_predictor(c, device) for c in members.checkpoints],
        members.weights,
        members.band_orders,
        members.class_positions,
    )
    log.info(
        "%s: ensemble of %d models, classes %s",
        path,
        len(members.checkpoints),
        ", ".join(members.card.class_names),
    )
    return predictor, members.card
