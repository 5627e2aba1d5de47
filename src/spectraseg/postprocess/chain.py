"""`PostprocessSettings` and the chain from probabilities to clean masks, window by window.

The chain, per window of rows:
1. thresholds (probabilities of a multi-label, sigmoid model), or the most probable class
   (a multi-class, softmax model, as `spectraseg predict` makes its masks); a mask raster is
   used as it is,
2. per-class morphology (`morphology.py`: opening, closing, smoothing, holes, minimum area),
3. the class conflict rules in order (`rules.py`),
4. the minimum area once more, so that a rule cutting an object leaves no slivers behind.

Every step is local, and `ResolvedPostprocess.halo_px` says how many extra rows above and below
a strip the whole chain needs: cleaning a strip read with that halo and keeping only the strip's
own rows gives exactly what cleaning the whole scene at once gives there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from spectraseg.errors import ConfigError, did_you_mean
from spectraseg.grid import Grid
from spectraseg.models.head import Head, class_masks
from spectraseg.postprocess.morphology import (
    MorphologySettings,
    PixelMorphology,
    area_reach,
    clean_mask,
    remove_small_objects,
)
from spectraseg.postprocess.polygons import PolygonSettings
from spectraseg.postprocess.rules import (
    ResolvedRule,
    Rule,
    apply_rules,
    parse_rules,
    resolve_rules,
    rules_halo_px,
)
from spectraseg.postprocess.thresholds import AUTO, resolve_thresholds
from spectraseg.settings import Settings

ALL_CLASSES = "all"
# Without an `all:` entry every class loses objects and fills holes under 9 pixels (a 3 x 3
# block): a U-Net's mask holds thousands of such specks at class borders (2,649 "water"
# polygons on the Sentinel-2 OSM scene), which a map reader takes for noise. `all: {}` turns
# the clean-up off.
DEFAULT_ALL = MorphologySettings(min_area_px=9, fill_holes_below_px=9)
AREA_STEMS = ("fill_holes_below", "min_area")


def _as_mapping(value: Any) -> Any:
    """A morphology entry as the keys it sets (entries may be settings objects or raw YAML)."""
    if isinstance(value, MorphologySettings):
        return value.model_dump(exclude_unset=True)
    return value


def merge_morphology(base: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """`entry` over `base`: what the entry sets wins, the rest comes from `base`.

    An area given in one unit replaces the base's area in either unit.

    Example:
        >>> merge_morphology({"min_area_m2": 20, "closing_px": 1}, {"min_area_px": 4})
        {'closing_px': 1, 'min_area_px': 4}
    """
    merged = dict(base)
    for stem in AREA_STEMS:
        if f"{stem}_px" in entry or f"{stem}_m2" in entry:
            merged.pop(f"{stem}_px", None)
            merged.pop(f"{stem}_m2", None)
    merged.update(entry)
    return merged


class PostprocessSettings(Settings):
    """The `postprocess:` section of a config.

    ```yaml
    postprocess:
      thresholds: auto                 # or a YAML/JSON file, or {building: 0.4}
      morphology:
        all: {min_area_px: 4}          # every class (default: min_area_px 9, fill_holes_below_px 9)
        building: {closing_px: 1, fill_holes_below_m2: 10, min_area_m2: 20}  # merged over all:
      rules:
        - {wins: water, over: [building]}
      polygons: {simplify_px: 0.5}
    ```

    After validation every class entry holds the `all:` entry with its own settings on top,
    and `all:` is always present (`DEFAULT_ALL` when not given).
    """

    thresholds: str | dict[str, float] = AUTO
    morphology: dict[str, MorphologySettings] = Field(
        default_factory=lambda: {ALL_CLASSES: DEFAULT_ALL}
    )
    rules: tuple[Rule, ...] = ()
    polygons: PolygonSettings = PolygonSettings()

    @field_validator("morphology", mode="before")
    @classmethod
    def _merge_over_all(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value  # pydantic names what is wrong
        entries = {key: _as_mapping(entry) for key, entry in value.items()}
        base = entries.get(ALL_CLASSES, DEFAULT_ALL.model_dump(exclude_unset=True))
        if not isinstance(base, dict):
            return value
        merged: dict[str, Any] = {ALL_CLASSES: base}
        for key, entry in entries.items():
            if key != ALL_CLASSES:
                merged[key] = merge_morphology(base, entry) if isinstance(entry, dict) else entry
        return merged

    @field_validator("rules", mode="before")
    @classmethod
    def _rules(cls, value: Any) -> tuple[Rule, ...]:
        # parse_rules gives one clear message per bad rule instead of pydantic's union report.
        try:
            return parse_rules(value, where="postprocess.rules")
        except ConfigError as error:
            raise ValueError(str(error)) from None


@dataclass(frozen=True)
class ResolvedPostprocess:
    """Post-processing for one raster: class positions, sizes in pixels, thresholds as numbers."""

    class_names: tuple[str, ...]
    thresholds: np.ndarray  # (K,)
    morphology: tuple[PixelMorphology, ...]  # one per class
    rules: tuple[ResolvedRule, ...]
    head: Head = "sigmoid"

    @property
    def halo_px(self) -> int:
        """Rows beyond a strip needed to clean it exactly as the whole scene would be."""
        morphology = max((m.halo_px for m in self.morphology), default=0)
        final_area = max((area_reach(m.min_area_px) for m in self.morphology), default=0)
        final_area = final_area if self.rules else 0
        return morphology + rules_halo_px(self.rules) + final_area


def resolve_postprocess(
    settings: PostprocessSettings,
    class_names: Sequence[str],
    grid: Grid | None,
    *,
    tuned_thresholds: Sequence[float] | None = None,
    head: Head = "sigmoid",
) -> ResolvedPostprocess:
    """Check `settings` against the raster's classes and convert every size to its pixels.

    `head` is the model's: "softmax" probabilities become masks by the most probable class.
    """
    names = tuple(class_names)
    for key in settings.morphology:
        if key != ALL_CLASSES and key not in names:
            raise ConfigError(
                f"postprocess.morphology: unknown class {key!r}"
                f"{did_you_mean(key, [*names, ALL_CLASSES])}."
            )
    default = settings.morphology.get(ALL_CLASSES, DEFAULT_ALL)
    morphology = tuple(settings.morphology.get(name, default).in_pixels(grid) for name in names)
    source: str | os.PathLike[str] | dict[str, float] = settings.thresholds
    thresholds = resolve_thresholds(source, names, tuned=tuned_thresholds)
    rules = tuple(resolve_rules(settings.rules, names, grid))
    return ResolvedPostprocess(names, thresholds, morphology, rules, head)


def postprocess_window(
    plan: ResolvedPostprocess,
    *,
    probs: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """(K, h, w) bool clean masks from probabilities (thresholded) or from a mask.

    Give `probs` (K, h, w) float, NaN where invalid, or `mask` (K, h, w) bool, or both (then the
    mask is used as is and the probabilities only decide `exclusive` rules). Inputs are untouched.
    """
    if mask is None:
        if probs is None:
            raise ValueError("postprocess_window needs probs or mask")
        binary = class_masks(probs, plan.thresholds, plan.head)
    else:
        binary = mask.astype(bool, copy=True)
    if binary.shape[0] != len(plan.class_names):
        raise ValueError(f"{binary.shape[0]} planes for {len(plan.class_names)} classes")
    for k, settings in enumerate(plan.morphology):
        if not settings.is_identity:
            binary[k] = clean_mask(binary[k], settings)
    if plan.rules:
        binary = apply_rules(binary, plan.rules, probs)
        for k, settings in enumerate(plan.morphology):
            binary[k] = remove_small_objects(binary[k], settings.min_area_px)
    return binary


def postprocess_masks(
    settings: PostprocessSettings,
    class_names: Sequence[str],
    grid: Grid | None,
    *,
    probs: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    tuned_thresholds: Sequence[float] | None = None,
    head: Head = "sigmoid",
) -> np.ndarray:
    """The whole chain on a scene in memory: (K, H, W) bool clean masks."""
    plan = resolve_postprocess(
        settings, class_names, grid, tuned_thresholds=tuned_thresholds, head=head
    )
    return postprocess_window(plan, probs=probs, mask=mask)
