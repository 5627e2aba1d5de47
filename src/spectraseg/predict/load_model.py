"""`load_model`: a checkpoint, a run folder or an ensemble, ready to predict.

It returns a `LoadedModel`: the predictor (raw bands in, probabilities out) and the model card
(`spectraseg.models.card.ModelCard`) every default of prediction comes from. `info` and `facts`
are the two views of the card that `predict_raster` reads for any callable model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from spectraseg.models.card import ModelCard
from spectraseg.predict.choices import ModelFacts
from spectraseg.predict.ensemble import build_ensemble, ensemble_card, ensemble_file
from spectraseg.predict.inputs import ModelInfo
from spectraseg.predict.predictor import build_predictor
from spectraseg.predict.tta import Model
from spectraseg.train.checkpoint import load_checkpoint

__all__ = ["LoadedModel", "facts_from_card", "info_from_card", "load_card", "load_model"]


@dataclass(frozen=True)
class LoadedModel:
    """A predictor and the card of the model it runs."""

    predictor: Model
    card: ModelCard
    source: Path

    @property
    def info(self) -> ModelInfo:
        """Bands, classes, thresholds, head and resolution, as `predict_raster` reads them."""
        return info_from_card(self.card)

    @property
    def facts(self) -> ModelFacts:
        """Patch, size multiple, measured margin and TTA scores, as `choices.py` reads them."""
        return facts_from_card(self.card)


def info_from_card(card: ModelCard) -> ModelInfo:
    """The card's input and output description, for `predict_raster`."""
    return ModelInfo(
        band_names=card.band_names,
        class_names=card.class_names,
        class_ids=card.class_ids,
        class_colours=card.class_colours,
        thresholds=card.thresholds,
        head=card.head,
        resolution=card.resolution,
    )


def facts_from_card(card: ModelCard) -> ModelFacts:
    """The card's facts about predicting cheaply, for `choose_settings`."""
    return ModelFacts(
        patch_px=card.patch_px,
        size_multiple=card.size_multiple,
        edge_margin_px=card.edge_margin_px,
        tta_jaccard=card.tta_jaccard,
        per_pixel=card.per_pixel,
        centre_crop_px=card.centre_crop_px,
    )


def load_model(
    path: str | os.PathLike[str], device: torch.device | str | None = None
) -> LoadedModel:
    """A `.pt` checkpoint, a run folder (its best.pt), an ensemble YAML or a per-class run
    folder (its ensemble.yaml), ready to predict.

    Args:
        device: where the network runs; default the CPU.

    Raises:
        CheckpointError: a checkpoint is missing, corrupt or incompatible.
        ConfigError: the ensemble file is malformed or its members do not fit together.
    """
    source = Path(path)
    target = torch.device(device) if device is not None else torch.device("cpu")
    ensemble = ensemble_file(source)
    if ensemble is not None:
        predictor, card = build_ensemble(ensemble, target)
        return LoadedModel(predictor=predictor, card=card, source=ensemble)
    checkpoint = load_checkpoint(source)
    return LoadedModel(
        predictor=build_predictor(checkpoint, target), card=checkpoint.card, source=source
    )


def load_card(path: str | os.PathLike[str]) -> ModelCard:
    """The card of what `load_model(path)` would load, without building any network.

    Raises:
        CheckpointError, ConfigError: as `load_model`.
    """
    ensemble = ensemble_file(path)
    return ensemble_card(ensemble) if ensemble is not None else load_checkpoint(path).card
