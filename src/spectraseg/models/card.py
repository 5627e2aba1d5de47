"""`ModelCard`: everything a trained model needs to be used, in one typed object.

A checkpoint stores the card whole (`train/checkpoint.py`); `load_model` hands it back with the
predictor, and prediction, vectorizing, evaluation and ensembles read the model's facts from it
and nothing else:

- what goes in: the raster bands by name and order, their training pixel size, the spectral
  indices appended to them (built-in names and the formulas of custom ones), and the
  normalization (method and per-band statistics, indices included);
- what comes out: the classes (names, classes.yaml ids, colours), the head (sigmoid:
  multi-label, per-class thresholds; softmax: multi-class, argmax) and the tuned thresholds;
- how to predict it cheaply: the training patch, the size multiple inputs must have, the
  valid-region crop, whether it is a per-pixel model, and what training measured about it
  (edge margin, Jaccard per TTA count; `predict/choices.py` turns these into defaults).

`patch_px` is the one size: the side of the training patches, which is also the smallest
window prediction chooses by itself (`--window patch` uses it as is).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from spectraseg.classes import Colour, parse_colour
from spectraseg.data.indices import IndexSettings
from spectraseg.models.head import Head
from spectraseg.settings import Settings
from spectraseg.version import __version__

__all__ = ["CARD_FORMAT_VERSION", "PER_PIXEL_MODELS", "CardClass", "ModelCard", "Normalization"]

CARD_FORMAT_VERSION = 1
# Models that see one pixel at a time: windows need no overlap and D4 transforms change nothing.
PER_PIXEL_MODELS = ("random-forest", "index-threshold")


class CardClass(Settings):
    """One output class: its name, its classes.yaml id and its colour."""

    name: str
    id: int
    colour: Colour = (128, 128, 128)

    @field_validator("colour", mode="before")
    @classmethod
    def _colour(cls, value: Any) -> Colour:
        return parse_colour(value)


class Normalization(Settings):
    """How inputs were scaled in training: the method and the per-band statistics
    (`spectraseg.data.normalize.BandStats.to_dict`, raw bands and indices)."""

    method: Literal["standard", "percentile"] = "standard"
    stats: dict[str, Any]


class ModelCard(Settings):
    """A trained model's contract with everything that uses it (see the module docstring)."""

    format_version: int = CARD_FORMAT_VERSION
    library_version: str = __version__
    model: str
    """The model kind: a network of `models/registry.py` (unet, fc-densenet, resnet-unet),
    random-forest or index-threshold."""
    model_settings: dict[str, Any] = Field(default_factory=dict)
    band_names: tuple[str, ...]
    """Raster bands the model takes, in its order; inputs are matched to them by name."""
    resolution: tuple[float, float] | None = None
    """Training pixel size (x, y) in CRS units; other scales get a warning (or `--resample`)."""
    indices: IndexSettings = IndexSettings()
    """Spectral indices appended to the bands, in order, with the formulas of custom ones."""
    normalization: Normalization
    classes: tuple[CardClass, ...] = Field(min_length=1)
    head: Head = "sigmoid"
    thresholds: tuple[float, ...]
    """Per-class thresholds tuned on validation data (sigmoid heads; 0.5 until tuned)."""
    patch_px: int = Field(gt=0)
    """The training patch side, and the smallest window prediction picks by itself."""
    size_multiple: int = Field(default=1, gt=0)
    """Valid input sizes are multiples of this (2**depth for a U-Net, 2**blocks for an
    FC-DenseNet, 32 for a ResNet U-Net, 1 per pixel)."""
    centre_crop_px: int = Field(default=0, ge=0)
    """Pixels at each window side whose output is not to be trusted (0: the whole window);
    valid-region training (`train.centre_crop_px`) records its crop here."""
    per_pixel: bool = False
    """Random forests and index thresholds: no TTA, no overlap."""
    edge_margin_px: int | None = Field(default=None, ge=0)
    """Measured edge effect (`predict/edge_margin.py`); None: not measured (50% overlap)."""
    tta_jaccard: dict[int, float] | None = None
    """Validation mean Jaccard with 1, 2, 4 and 8 D4 passes (`predict/tta_choice.py`)."""

    @field_validator("tta_jaccard")
    @classmethod
    def _tta_counts(cls, value: dict[int, float] | None) -> dict[int, float] | None:
        if value is not None and any(count not in (1, 2, 4, 8) for count in value):
            raise ValueError("expected Jaccard scores for 1, 2, 4 or 8 passes")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        if len(self.thresholds) != len(self.classes):
            raise ValueError(f"{len(self.thresholds)} thresholds for {len(self.classes)} classes")
        if any(not 0.0 <= t <= 1.0 for t in self.thresholds):
            raise ValueError("thresholds must be between 0 and 1")
        for attribute in ("name", "id"):
            seen = [getattr(c, attribute) for c in self.classes]
            if len(set(seen)) != len(seen):
                raise ValueError(f"duplicate class {attribute}s")
        return self

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @property
    def class_ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.classes)

    @property
    def class_colours(self) -> tuple[Colour, ...]:
        return tuple(c.colour for c in self.classes)

    @property
    def channel_names(self) -> tuple[str, ...]:
        """The network's input channels: the bands, then the indices."""
        return (*self.band_names, *self.indices.names)

    @property
    def in_channels(self) -> int:
        return len(self.band_names) + len(self.indices.names)

    @property
    def num_classes(self) -> int:
        return len(self.classes)
