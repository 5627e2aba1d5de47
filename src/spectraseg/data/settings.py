"""`DataSettings`: which pixels and labels a run learns from (`data` in the config)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from spectraseg.data.indices import IndexSettings
from spectraseg.data.split import SplitSettings
from spectraseg.io.labels import LabelSettings
from spectraseg.settings import Settings

__all__ = ["DataSettings"]


class DataSettings(Settings):
    """Bands, indices, labels, normalization, patch size and split of the training data."""

    bands: tuple[str, ...] = ()
    """Raw bands to use, in this order; empty: every band of the scenes."""
    indices: IndexSettings = IndexSettings()
    """Spectral indices appended after the bands; a plain list is short for `names`:
    `indices: [ndwi, savi, evi, ccci]`."""
    classes: tuple[str, ...] = ()
    """Classes to learn, in this order; empty: every class of classes.yaml. The pixels of the
    others count as background: `[building]` trains a one-class (building or not) model."""
    labels: LabelSettings = LabelSettings()
    """How labels are read: class column, GeoPackage layer, labelled area, mask encoding."""
    normalization: Literal["standard", "percentile"] = "standard"
    """standard: (x - mean) / std; percentile: the 2nd and 98th percentiles to 0 and 1."""
    max_invalid_share: float = Field(default=0.5, ge=0.0, le=1.0)
    """Patches with a larger share of invalid (nodata) pixels are not drawn. Unlabelled pixels
    (outside `labels.labelled_area`, or of an ignored value) do not count: they only drop out of
    the loss and the metrics, so a few polygons over a large scene train with the default."""
    patch_size: int = Field(default=128, ge=8)
    """Side of the training patches in pixels; clamped, with a warning, to what the scenes and
    the split can hold."""
    resolution: float | None = Field(default=None, gt=0.0)
    """Pixel size to resample every scene to; default the finest band's."""
    coregister: bool = False
    """Scenes of several files (sensors): estimate each file's sub-pixel shift against the
    reference file by phase correlation, log it, and read the files with it undone."""
    split: SplitSettings = SplitSettings()
    streaming: Literal["auto", "always", "never"] = "auto"
    """Networks' training scenes in memory (never), read window by window from the files
    (always), or in memory when they fit `memory_budget_gb` (auto); the choice is logged."""
    memory_budget_gb: float | None = Field(default=None, gt=0.0)
    """Memory the in-memory path may take before auto streams; default half of what the
    machine has available at the start."""

    @field_validator("indices", mode="before")
    @classmethod
    def _list_of_names(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return {"names": tuple(value)}
        return value
