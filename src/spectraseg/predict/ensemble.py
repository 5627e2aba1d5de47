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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, ValidationError

from spectraseg.errors import CheckpointError, ConfigError
from spectraseg.io.yaml_file import read_yaml
from spectraseg.models.unet import UNetSettings
from spectraseg.predict.choices import ModelFacts
from spectraseg.predict.compiled import compile_model
from spectraseg.predict.inputs import ModelInfo
from spectraseg.predict.tta import Model
from spectraseg.settings import Settings
from spectraseg.train.checkpoint import Checkpoint, load_checkpoint
from spectraseg.train.predictor import build_predictor

__all__ = [
    "PER_PIXEL_MODELS",
    "EnsembleMember",
    "EnsemblePredictor",
    "EnsembleSettings",
    "LoadedModel",
    "facts_from_checkpoint",
    "info_from_checkpoint",
    "load_ensemble",
    "load_model",
]

log = logging.getLogger(__name__)

# Models that see one pixel at a time: windows need no overlap and D4 transforms change nothing.
PER_PIXEL_MODELS = ("random-forest", "index-threshold")
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


@dataclass(frozen=True)
class LoadedModel:
    """A predictor with what `predict_raster` and the CLI need to know about it."""

    predictor: Model
    info: ModelInfo
    window_px: int
    """The training patch size: the default prediction window."""
    per_pixel: bool
    """Random forests and index thresholds: no TTA, no overlap needed."""
    source: Path
    facts: ModelFacts
    """What the checkpoint says about predicting it cheaply: patch, size multiple, measured
    edge margin and TTA scores (`choices.py`)."""


def facts_from_checkpoint(checkpoint: Checkpoint) -> ModelFacts:
    """Patch, size multiple, edge margin and TTA scores as a checkpoint records them."""
    depth = checkpoint.model_settings.get("depth") if checkpoint.model_name == "unet" else None
    if checkpoint.model_name == "unet" and depth is None:
        depth = UNetSettings().depth
    return ModelFacts(
        patch_px=checkpoint.patch_size,
        size_multiple=1 << int(depth) if depth is not None else 1,
        edge_margin_px=checkpoint.edge_margin_px,
        tta_jaccard=checkpoint.tta_jaccard,
        per_pixel=checkpoint.model_name in PER_PIXEL_MODELS,
    )


def info_from_checkpoint(checkpoint: Checkpoint) -> ModelInfo:
    """The bands, classes, thresholds, head and resolution a checkpoint records."""
    head = checkpoint.head
    if head not in ("sigmoid", "softmax"):
        raise CheckpointError(f"unknown head {head!r} in the checkpoint.")
    return ModelInfo(
        band_names=checkpoint.band_names,
        class_names=checkpoint.class_names,
        thresholds=checkpoint.thresholds,
        head="sigmoid" if head == "sigmoid" else "softmax",
        resolution=checkpoint.resolution,
    )


def load_model(path: str | os.PathLike[str], device: torch.device) -> LoadedModel:
    """A `.pt` checkpoint, a run folder (its best.pt) or an ensemble YAML, ready to predict.

    Raises:
        CheckpointError: a checkpoint is missing, corrupt or incompatible.
        ConfigError: the ensemble file is malformed or its members do not fit together.
    """
    source = Path(path)
    if source.suffix.lower() in ENSEMBLE_SUFFIXES:
        return load_ensemble(source, device)
    checkpoint = load_checkpoint(source)
    return LoadedModel(
        predictor=build_predictor(checkpoint, device),
        info=info_from_checkpoint(checkpoint),
        window_px=checkpoint.patch_size,
        per_pixel=checkpoint.model_name in PER_PIXEL_MODELS,
        source=source,
        facts=facts_from_checkpoint(checkpoint),
    )


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


def load_ensemble(path: str | os.PathLike[str], device: torch.device) -> LoadedModel:
    """An ensemble YAML as one model: members loaded, checked to fit together, and averaged."""
    source = Path(path)
    settings = _read_settings(source)
    checkpoints = [load_checkpoint(source.parent / m.path) for m in settings.members]
    first = checkpoints[0]
    orders: list[list[int]] = []
    for member, checkpoint in zip(settings.members, checkpoints, strict=True):
        where = f"{source}: member {member.path}"
        if checkpoint.class_names != first.class_names or checkpoint.head != first.head:
            raise ConfigError(
                f"{where}: classes {', '.join(checkpoint.class_names)} ({checkpoint.head}) differ "
                f"from the first member's {', '.join(first.class_names)} ({first.head}); "
                "ensemble members must predict the same classes."
            )
        if sorted(checkpoint.band_names) != sorted(first.band_names):
            raise ConfigError(
                f"{where}: bands {', '.join(checkpoint.band_names)} differ from the first "
                f"member's {', '.join(first.band_names)}; ensemble members must share their bands."
            )
        orders.append([first.band_names.index(name) for name in checkpoint.band_names])
    weights = [m.weight for m in settings.members]
    if settings.thresholds is not None:
        if len(settings.thresholds) != first.num_classes:
            raise ConfigError(
                f"{source}: {len(settings.thresholds)} thresholds for {first.num_classes} classes "
                f"({', '.join(first.class_names)})."
            )
        thresholds = settings.thresholds
    else:
        stacked = np.array([c.thresholds for c in checkpoints], dtype=np.float64)
        thresholds = tuple(float(t) for t in np.average(stacked, axis=0, weights=weights))
    predictor = EnsemblePredictor(
        [build_predictor(c, device) for c in checkpoints], weights, orders
    )
    log.info("%s: ensemble of %d models", source, len(checkpoints))
    base = info_from_checkpoint(first)
    return LoadedModel(
        predictor=predictor,
        info=ModelInfo(
            band_names=base.band_names,
            class_names=base.class_names,
            thresholds=thresholds,
            head=base.head,
            resolution=base.resolution,
        ),
        window_px=min(c.patch_size for c in checkpoints),
        per_pixel=all(c.model_name in PER_PIXEL_MODELS for c in checkpoints),
        source=source,
        facts=_ensemble_facts([facts_from_checkpoint(c) for c in checkpoints]),
    )


def _ensemble_facts(members: Sequence[ModelFacts]) -> ModelFacts:
    """The members' facts combined: the widest margin and multiple, the smallest patch; TTA
    scores only belong to one model, so an ensemble has none (8 passes under auto)."""
    multiple = math.lcm(*(m.size_multiple for m in members))
    margins = [m.edge_margin_px for m in members]
    return ModelFacts(
        patch_px=min(m.patch_px for m in members),
        size_multiple=multiple,
        edge_margin_px=None if None in margins else max(m for m in margins if m is not None),
        tta_jaccard=None,
        per_pixel=all(m.per_pixel for m in members),
    )
