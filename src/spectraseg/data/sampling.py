"""Class-balanced training windows: pick a class, then a patch that contains it.

Rare classes (under 2% of pixels in DSTL and in the built-in sample) almost never fill a
uniformly drawn patch, so the network rarely sees them. Here each draw first picks a class with
probability proportional to its pixel count times a smoothed inverse frequency weight
`(share + smoothing) ** -class_balance`, then one of that class's pixels uniformly, then a patch
containing that pixel. With `class_balance` 0 every usable pixel is equally likely (uniform
patches); with 1 and no smoothing every class is drawn equally often.

Multi-label masks (a pixel in several classes) are handled by crediting each pixel to its rarest
class only, so pixels are never counted twice and strength 0 stays exactly uniform. Labelled
pixels in no class form a "background" class of their own.

Only labelled pixels are drawn around, so every patch holds labelled pixels, however sparse the
labels (a few polygons over a large scene, `data.labels.labelled_area`). Whether a patch may be
drawn at all is a question of the image, not of the labels: patches with more than
`max_invalid_share` invalid (nodata) pixels are never drawn, while unlabelled pixels only drop
out of the loss and the metrics. Patches must also lie entirely inside the scene's training
region (see `data/split.py`). Everything here is numpy and pure: the caller passes the random
generator.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
from pydantic import Field

from spectraseg.errors import DataError
from spectraseg.settings import Settings

__all__ = [
    "PatchWindow",
    "SamplingScene",
    "SamplingSettings",
    "WindowSampler",
    "allowed_windows",
    "class_pixel_counts",
    "class_weights",
    "rarest_class",
]

log = logging.getLogger(__name__)

# Tries at a random window position around a pixel before listing the allowed ones explicitly.
_QUICK_TRIES = 8


class SamplingSettings(Settings):
    """How training patches are chosen (`sampling` in the config)."""

    class_balance: float = Field(default=0.5, ge=0.0, le=1.0)
    """0: uniform patches; 1: every class (and background) drawn equally often."""
    smoothing: float = Field(default=0.01, ge=0.0)
    """Added to each class's pixel share before inverting, so a class of a few pixels does not
    take every draw: a class at 0.1% gets the weight of one at 1.1%."""
    max_locations_per_class: int = Field(default=200_000, ge=1)
    """Pixels kept per class and scene (a uniform subsample beyond that) to bound memory on
    large scenes; the class's true count still sets its probability."""


class PatchWindow(NamedTuple):
    """A square patch: scene number, top row, left column (its size is the sampler's)."""

    scene: int
    row: int
    col: int


@dataclass(frozen=True, eq=False)
class SamplingScene:
    """What the sampler needs of one training scene.

    Attributes:
        mask: (K, H, W) bool class masks.
        usable: (H, W) bool, pixels that are valid and labelled (not ignored): the pixels
            patches are drawn around.
        region: (H, W) bool where patches may lie (the training part of a split), or None for
            the whole scene.
        valid: (H, W) bool, pixels with data (not nodata), whose share decides whether a patch
            may be drawn; None: every pixel has data.
    """

    mask: np.ndarray
    usable: np.ndarray
    region: np.ndarray | None = None
    valid: np.ndarray | None = None

    def has_data(self) -> np.ndarray:
        """(H, W) bool: `valid`, or every pixel when the scene has no nodata."""
        if self.valid is None:
            return np.ones(self.usable.shape, dtype=bool)
        return self.valid


def class_pixel_counts(mask: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """(K + 1,) usable pixels in each class, then those in no class (background).

    Example:
        >>> mask = np.array([[[1, 1, 0, 0]], [[0, 1, 0, 0]]], dtype=bool)
        >>> class_pixel_counts(mask, np.array([[True, True, True, False]])).tolist()
        [2, 1, 1]
    """
    in_class = mask & usable
    counts = np.count_nonzero(in_class, axis=(1, 2)).astype(np.int64)
    background = np.count_nonzero(usable & ~in_class.any(axis=0))
    return np.append(counts, np.int64(background))


def class_weights(counts: np.ndarray, settings: SamplingSettings) -> np.ndarray:
    """(K + 1,) smoothed inverse-frequency weights `(share + smoothing) ** -class_balance`.

    Example:
        >>> settings = SamplingSettings(class_balance=1.0, smoothing=0.0)
        >>> class_weights(np.array([10, 90]), settings).round(2).tolist()
        [10.0, 1.11]
    """
    total = max(1, int(counts.sum()))
    share = counts.astype(np.float64) / total
    base = share + settings.smoothing
    weights = np.ones_like(base)
    present = base > 0
    weights[present] = base[present] ** -settings.class_balance
    return weights


def rarest_class(mask: np.ndarray, usable: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(H, W) int16: each usable pixel's class with the highest weight, K for none, -1 unusable.

    Example:
        >>> mask = np.array([[[1, 1, 0]], [[0, 1, 0]]], dtype=bool)
        >>> rarest_class(mask, np.ones((1, 3), bool), np.array([1.0, 5.0, 0.5])).tolist()
        [[0, 1, 2]]
    """
    num_classes = mask.shape[0]
    assigned = np.full(usable.shape, num_classes, dtype=np.int16)
    # Later writes win: visit classes from the most common to the rarest.
    for k in np.argsort(weights[:num_classes], kind="stable"):
        assigned[mask[k]] = k
    assigned[~usable] = -1
    return assigned


def _box_sums(values: np.ndarray, size: int) -> np.ndarray:
    """Sum of `values` over every size x size box, indexed by the box's top-left corner."""
    padded = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype=np.int64)
    np.cumsum(np.cumsum(values, axis=0, dtype=np.int64), axis=1, out=padded[1:, 1:])
    return (
        padded[size:, size:]
        - padded[:-size, size:]
        - padded[size:, :-size]
        + padded[:-size, :-size]
    )


def allowed_windows(
    valid: np.ndarray, region: np.ndarray | None, patch_size: int, max_invalid_share: float
) -> np.ndarray:
    """(H - P + 1, W - P + 1) bool: top-left corners of patches that may be drawn.

    A patch may be drawn when at most `max_invalid_share` of its pixels are invalid (nodata)
    and, if a region is given, all of its pixels lie in it. Unlabelled pixels are no reason to
    refuse a patch: pass the image's validity, not the labels'.

    Example:
        >>> valid = np.array([[True, True, False]] * 2)
        >>> allowed_windows(valid, None, 2, 0.25).tolist()
        [[True, False]]
    """
    height, width = valid.shape
    if patch_size > min(height, width):
        return np.zeros((max(0, height - patch_size + 1), max(0, width - patch_size + 1)), bool)
    invalid = _box_sums(~valid, patch_size)
    allowed = invalid <= max_invalid_share * patch_size * patch_size
    if region is not None:
        allowed &= _box_sums(~region, patch_size) == 0
    return allowed


def _covered(allowed: np.ndarray, patch_size: int) -> np.ndarray:
    """(H, W) bool: pixels inside at least one allowed patch."""
    rows, cols = allowed.shape
    height, width = rows + patch_size - 1, cols + patch_size - 1
    # A pixel is covered when an allowed corner lies in the P x P box above-left of it.
    padded = np.zeros((height + patch_size - 1, width + patch_size - 1), dtype=bool)
    padded[patch_size - 1 : patch_size - 1 + rows, patch_size - 1 : patch_size - 1 + cols] = allowed
    return _box_sums(padded, patch_size) > 0


class WindowSampler:
    """Draws class-balanced patch windows from a set of training scenes.

    Building it costs a few passes over each scene's masks; memory beyond that is about
    `max_locations_per_class` positions per class and scene, plus one bool per window corner.
    """

    def __init__(
        self,
        scenes: Sequence[SamplingScene],
        *,
        patch_size: int,
        max_invalid_share: float,
        settings: SamplingSettings,
        rng: np.random.Generator,
        scored_margin_px: int = 0,
    ) -> None:
        """Index the scenes' pixels by class.

        Args:
            rng: only used to subsample the locations of very common classes.
            scored_margin_px: the border the loss does not score (`train.centre_crop_px`):
                a drawn pixel is placed inside it where a window allows (`window_around`).

        Raises:
            DataError: when no patch of `patch_size` can be drawn from any scene, or none of
                the patches that can holds a labelled pixel.
        """
        if not scenes:
            raise DataError("no training scenes to draw patches from.")
        self.patch_size = patch_size
        self.scored_margin_px = scored_margin_px
        self.num_classes = int(scenes[0].mask.shape[0])
        self._allowed = [
            allowed_windows(s.has_data(), s.region, patch_size, max_invalid_share) for s in scenes
        ]
        if not any(a.any() for a in self._allowed):
            raise DataError(
                f"no {patch_size} px training patch has at most {max_invalid_share:.0%} invalid "
                "(nodata) pixels. Lower data.patch_size or raise data.max_invalid_share."
            )
        drawable = [
            s.usable & _covered(a, patch_size) if a.any() else np.zeros_like(s.usable)
            for s, a in zip(scenes, self._allowed, strict=True)
        ]
        if not any(d.any() for d in drawable):
            raise DataError(
                f"no labelled pixel lies in a {patch_size} px training patch with at most "
                f"{max_invalid_share:.0%} invalid (nodata) pixels inside the training region. "
                "Label more of the scenes, lower data.patch_size or raise "
                "data.max_invalid_share."
            )
        self.pixel_counts = sum(
            (class_pixel_counts(s.mask, d) for s, d in zip(scenes, drawable, strict=True)),
            np.zeros(self.num_classes + 1, dtype=np.int64),
        )
        self.weights = class_weights(self.pixel_counts, settings)
        # per_scene[s][k]: pixels of scene s credited to class k; locations: a subsample of them.
        self._counts = np.zeros((len(scenes), self.num_classes + 1), dtype=np.int64)
        self._locations: list[list[np.ndarray]] = []
        for s, (scene, usable) in enumerate(zip(scenes, drawable, strict=True)):
            assigned = rarest_class(scene.mask, usable, self.weights).ravel()
            order = np.argsort(assigned, kind="stable")
            starts = np.searchsorted(assigned[order], np.arange(-1, self.num_classes + 2))
            scene_locations = []
            for k in range(self.num_classes + 1):
                members = order[starts[k + 1] : starts[k + 2]]
                self._counts[s, k] = members.size
                if members.size > settings.max_locations_per_class:
                    members = rng.choice(members, settings.max_locations_per_class, replace=False)
                scene_locations.append(members.astype(np.int64))
            self._locations.append(scene_locations)
        self._widths = [int(s.usable.shape[1]) for s in scenes]
        credited = self._counts.sum(axis=0).astype(np.float64)
        mass = credited * self.weights
        self.class_probabilities = mass / mass.sum()
        log.debug("patch classes drawn with probabilities %s", self.class_probabilities.round(3))

    def draw(self, rng: np.random.Generator) -> tuple[PatchWindow, int]:
        """One window and the class it was drawn for (K for background)."""
        k = int(rng.choice(self.num_classes + 1, p=self.class_probabilities))
        per_scene = self._counts[:, k].astype(np.float64)
        scene = int(rng.choice(per_scene.size, p=per_scene / per_scene.sum()))
        locations = self._locations[scene][k]
        flat = int(locations[rng.integers(locations.size)])
        row, col = divmod(flat, self._widths[scene])
        return self._window_around(scene, row, col, rng), k

    def _window_around(
        self, scene: int, row: int, col: int, rng: np.random.Generator
    ) -> PatchWindow:
        """A uniformly chosen allowed window containing pixel (row, col)."""
        return window_around(
            _DenseCorners(self._allowed[scene]),
            scene,
            row,
            col,
            self.patch_size,
            rng,
            self.scored_margin_px,
        )


class AllowedCorners(Protocol):
    """The allowed top-left patch corners of a scene, whole or packed as bits."""

    @property
    def shape(self) -> tuple[int, int]: ...

    def get(self, row: int, col: int) -> bool: ...

    def rows(self, start: int, stop: int) -> np.ndarray: ...


class _DenseCorners:
    """An (H, W) bool array of allowed corners behind the `AllowedCorners` reads."""

    def __init__(self, allowed: np.ndarray) -> None:
        self._allowed = allowed
        self.shape = (int(allowed.shape[0]), int(allowed.shape[1]))

    def get(self, row: int, col: int) -> bool:
        return bool(self._allowed[row, col])

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self._allowed[start:stop]


def window_around(
    allowed: AllowedCorners,
    scene: int,
    row: int,
    col: int,
    size: int,
    rng: np.random.Generator,
    margin: int = 0,
) -> PatchWindow:
    """A uniformly chosen allowed window of `size` px containing pixel (row, col), at least
    `margin` px inside its border when an allowed window can hold it there.

    With valid-region training (`train.centre_crop_px`) only a window's centre is scored: a
    pixel drawn for its class must land there, or the draw credits a class the loss never
    sees. Near a scene's edge, where no allowed window has the pixel in its centre, any window
    containing it is taken. The in-memory and streamed samplers both call this, so they make
    the same random calls and draw the same windows for a seed.
    """
    if margin:
        centred = _window_in(allowed, scene, row, col, size, rng, margin)
        if centred is not None:
            return centred
    window = _window_in(allowed, scene, row, col, size, rng, 0)
    assert window is not None, "a drawable pixel lies in some allowed window"
    return window


def _window_in(
    allowed: AllowedCorners,
    scene: int,
    row: int,
    col: int,
    size: int,
    rng: np.random.Generator,
    margin: int,
) -> PatchWindow | None:
    """A few random corners first (almost always enough), then a uniform pick among every
    allowed corner whose window holds the pixel `margin` px inside; None when none does."""
    top, left = max(0, row - size + 1 + margin), max(0, col - size + 1 + margin)
    bottom = min(row - margin, allowed.shape[0] - 1)
    right = min(col - margin, allowed.shape[1] - 1)
    if top > bottom or left > right:
        return None
    for _ in range(_QUICK_TRIES):
        r = int(rng.integers(top, bottom + 1))
        c = int(rng.integers(left, right + 1))
        if allowed.get(r, c):
            return PatchWindow(scene, r, c)
    rows, cols = np.nonzero(allowed.rows(top, bottom + 1)[:, left : right + 1])
    if rows.size == 0:
        return None
    pick = int(rng.integers(rows.size))
    return PatchWindow(scene, top + int(rows[pick]), left + int(cols[pick]))
