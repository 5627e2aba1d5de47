"""Train/validation split: by scene when there are enough, else by spatial blocks with a gap.

Neighbouring pixels are nearly copies of each other, so validating on pixels next to training
pixels flatters the model. With 3 or more scenes whole scenes are held out. With fewer, each
scene gives a block along its longer side to validation, and training patches keep a gap of at
least half a patch from it: a training patch then never overlaps a validation window, and no
training pixel sees validation pixels through the part of its receptive field inside the patch.

Validation uses a fixed set of non-overlapping windows covering the validation area, so the
metric of every epoch is computed on exactly the same pixels. Everything here is pure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal, NamedTuple

import numpy as np
from pydantic import Field

from spectraseg.errors import ConfigError, DataError, did_you_mean
from spectraseg.settings import Settings

__all__ = [
    "HeldOutArea",
    "Split",
    "SplitSettings",
    "ValidationWindow",
    "held_out_areas",
    "held_out_from_record",
    "largest_patch_size",
    "split_by_shapes",
    "split_record",
    "split_scenes",
]

# Scenes needed to split by scene: at least two to train on and one to validate on.
MIN_SCENES_FOR_SCENE_SPLIT = 3


class SplitSettings(Settings):
    """How scenes are divided into training and validation (`data.split` in the config)."""

    validation_share: float = Field(default=0.25, gt=0.0, lt=1.0)
    """Share of the scenes (3 or more scenes) or of each scene's longer side (fewer)."""
    validation_scenes: tuple[str, ...] = ()
    """Scene names to validate on; empty: chosen with the seed."""
    gap_px: int | None = Field(default=None, ge=0)
    """Gap between training patches and validation blocks; at least half a patch (the default)."""
    window_px: int | None = Field(default=None, ge=8)
    """Side of the validation windows; default the training patch size."""
    max_windows: int = Field(default=64, ge=1)
    """Validation windows kept (a fixed seeded subset beyond that) to bound validation time."""
    seed: int | None = None
    """Seed of the split alone; default `train.seed`. Fix it to train again with another
    `train.seed` (other weights and patches) on the same validation blocks, e.g. to measure how
    much one training's score moves from run to run."""

    def rng(self, seed: int) -> np.random.Generator:
        """The split's random generator: from `seed` (the training's) unless `self.seed` is set."""
        return np.random.default_rng(self.seed if self.seed is not None else seed)


class ValidationWindow(NamedTuple):
    """A validation window: scene number, top row, left column, height, width (pixels)."""

    scene: int
    row: int
    col: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """Row and column slices of the window in its scene's arrays."""
        return (slice(self.row, self.row + self.height), slice(self.col, self.col + self.width))


def _gap(patch_size: int, settings: SplitSettings) -> int:
    half = math.ceil(patch_size / 2)
    return max(half, settings.gap_px or 0)


def _validation_length(length: int, settings: SplitSettings) -> int:
    return max(1, round(length * settings.validation_share))


def largest_patch_size(shapes: Sequence[tuple[int, int]], settings: SplitSettings) -> int:
    """The largest training patch the split of scenes of these (H, W) shapes can hold.

    By blocks the training part of a side L keeps L - V - P/2 pixels, which must hold P:
    P <= 2 (L - V) / 3.

    Example:
        >>> largest_patch_size([(256, 256)], SplitSettings(validation_share=0.25))
        128
    """
    if len(shapes) >= MIN_SCENES_FOR_SCENE_SPLIT:
        return min(min(shape) for shape in shapes)
    sizes = []
    for height, width in shapes:
        length = max(height, width)
        across = min(height, width)
        along = (2 * (length - _validation_length(length, settings))) // 3
        sizes.append(min(across, along))
    return min(sizes)


def _tile(
    scene: int, rows: tuple[int, int], cols: tuple[int, int], size: int
) -> list[ValidationWindow]:
    """Non-overlapping windows of at most size x size covering rows x cols exactly."""
    windows = []
    for top in range(rows[0], rows[1], size):
        for left in range(cols[0], cols[1], size):
            height, width = min(size, rows[1] - top), min(size, cols[1] - left)
            windows.append(ValidationWindow(scene, top, left, height, width))
    return windows


def _choose_validation_scenes(
    names: Sequence[str], settings: SplitSettings, rng: np.random.Generator
) -> list[int]:
    if settings.validation_scenes:
        chosen = []
        for name in settings.validation_scenes:
            if name not in names:
                raise ConfigError(
                    f"data.split.validation_scenes: no scene {name!r}{did_you_mean(name, names)}."
                )
            chosen.append(list(names).index(name))
        if len(chosen) >= len(names):
            raise ConfigError(
                "data.split.validation_scenes names every scene; leave at least one to train on."
            )
        return sorted(chosen)
    count = min(len(names) - 1, max(1, round(len(names) * settings.validation_share)))
    return sorted(int(s) for s in rng.permutation(len(names))[:count])


@dataclass(frozen=True)
class HeldOutArea:
    """The validation area of one scene: `rows` x `cols` (half-open pixel ranges).

    The whole scene when splitting by scene, a block along its longer side otherwise. Pure
    geometry: which pixels in it are usable is the caller's business.
    """

    scene: int
    rows: tuple[int, int]
    cols: tuple[int, int]

    def mask(self, shape: tuple[int, int], rows: tuple[int, int] | None = None) -> np.ndarray:
        """(H, W) bool, True inside the area; only rows `[start, stop)` of it when given."""
        start, stop = rows if rows is not None else (0, shape[0])
        inside = np.zeros((stop - start, shape[1]), dtype=bool)
        first, last = max(self.rows[0], start), min(self.rows[1], stop)
        if first < last:
            inside[first - start : last - start, slice(*self.cols)] = True
        return inside


@dataclass(frozen=True, eq=False)
class Split:
    """The outcome of a split.

    Attributes:
        train_scenes: numbers of the scenes training patches are drawn from.
        windows: the fixed validation windows.
        mode: "scenes" or "blocks".
        shapes: (H, W) of every scene.
        held_out: the validation area of each scene that has one.
        gap_px: pixels kept free of training patches around each held-out block.
    """

    train_scenes: tuple[int, ...]
    windows: tuple[ValidationWindow, ...]
    mode: Literal["scenes", "blocks"]
    shapes: tuple[tuple[int, int], ...]
    held_out: tuple[HeldOutArea, ...]
    gap_px: int

    def excluded(self, scene: int) -> tuple[tuple[int, int], tuple[int, int]] | None:
        """(rows, cols) no training patch of training scene `scene` may touch (its held-out
        block and the gap, clipped at 0), or None when patches may lie anywhere in it.

        Streamed training uses this rectangle instead of `regions`, which costs a bool per
        pixel.
        """
        if self.mode == "scenes":
            return None
        area = next(a for a in self.held_out if a.scene == scene)
        gap = self.gap_px
        rows = (max(0, area.rows[0] - gap), area.rows[1] + gap)
        cols = (max(0, area.cols[0] - gap), area.cols[1] + gap)
        return rows, cols

    @cached_property
    def regions(self) -> tuple[np.ndarray | None, ...]:
        """For each of `train_scenes`, an (H, W) bool mask of where training patches may lie,
        or None for the whole scene."""
        masks: list[np.ndarray | None] = []
        for scene in self.train_scenes:
            cut = self.excluded(scene)
            if cut is None:
                masks.append(None)
                continue
            region = np.ones(self.shapes[scene], dtype=bool)
            region[slice(*cut[0]), slice(*cut[1])] = False
            masks.append(region)
        return tuple(masks)

    def describe(self, names: Sequence[str]) -> str:
        """One line for the log."""
        validation = sorted({names[w.scene] for w in self.windows})
        if self.mode == "scenes":
            return (
                f"split by scene: train on {', '.join(names[s] for s in self.train_scenes)}; "
                f"validate on {', '.join(validation)} ({len(self.windows)} windows)"
            )
        return (
            f"split by spatial blocks ({len(names)} scene(s)): "
            f"{len(self.windows)} validation windows, a gap before training patches"
        )


def _held_out(
    names: Sequence[str],
    shapes: Sequence[tuple[int, int]],
    settings: SplitSettings,
    rng: np.random.Generator,
) -> tuple[Literal["scenes", "blocks"], list[HeldOutArea]]:
    if len(names) >= MIN_SCENES_FOR_SCENE_SPLIT:
        chosen = _choose_validation_scenes(names, settings, rng)
        return "scenes", [HeldOutArea(s, (0, shapes[s][0]), (0, shapes[s][1])) for s in chosen]
    areas = []
    for s, (height, width) in enumerate(shapes):
        vertical = height >= width
        length = height if vertical else width
        size = _validation_length(length, settings)
        # The seed picks which end of the scene holds out its block.
        start = 0 if rng.integers(2) == 0 else length - size
        block = (start, start + size)
        areas.append(
            HeldOutArea(s, block, (0, width)) if vertical else HeldOutArea(s, (0, height), block)
        )
    return "blocks", areas


def held_out_areas(
    names: Sequence[str],
    shapes: Sequence[tuple[int, int]],
    *,
    settings: SplitSettings,
    seed: int,
) -> list[HeldOutArea]:
    """Where `split_scenes` puts validation for scenes of these (H, W) shapes and this seed.

    Scoring a run that has no separate test set reads these, so its scores cover exactly the
    pixels training never drew a patch from (nor, with the gap, a patch next to them).

    Example:
        >>> held_out_areas(["a"], [(64, 256)], settings=SplitSettings(), seed=0)[0].rows
        (0, 64)
    """
    return _held_out(names, shapes, settings, settings.rng(seed))[1]


def split_record(
    names: Sequence[str], shapes: Sequence[tuple[int, int]], areas: Sequence[HeldOutArea]
) -> dict[str, Any]:
    """What a run folder's `split.json` holds: every training scene and its held-out area.

    `spectraseg evaluate --split RUN_DIR` reads it to score only pixels training never drew
    a patch from, whatever data folder the predictions came from.

    Example:
        >>> areas = held_out_areas(["a"], [(64, 256)], settings=SplitSettings(), seed=0)
        >>> split_record(["a"], [(64, 256)], areas)["scenes"][0]["held_out"]
        {'rows': [0, 64], 'cols': [192, 256]}
    """
    by_scene = {area.scene: area for area in areas}
    scenes = []
    for index, (name, (height, width)) in enumerate(zip(names, shapes, strict=True)):
        area = by_scene.get(index)
        held_out = {"rows": list(area.rows), "cols": list(area.cols)} if area else None
        scenes.append({"name": name, "height": height, "width": width, "held_out": held_out})
    return {"scenes": scenes}


def held_out_from_record(
    record: Any, *, where: str
) -> dict[str, tuple[tuple[int, int], HeldOutArea]]:
    """Scene name -> ((H, W), held-out area) from a `split_record` document; scenes without
    a held-out area (trained on whole) are left out."""
    found: dict[str, tuple[tuple[int, int], HeldOutArea]] = {}
    try:
        for index, scene in enumerate(record["scenes"]):
            area = scene["held_out"]
            if area is None:
                continue
            rows = (int(area["rows"][0]), int(area["rows"][1]))
            cols = (int(area["cols"][0]), int(area["cols"][1]))
            shape = (int(scene["height"]), int(scene["width"]))
            found[str(scene["name"])] = (shape, HeldOutArea(index, rows, cols))
    except (KeyError, IndexError, TypeError, ValueError):
        raise DataError(f"{where}: not a split record (scenes with their held_out area).") from None
    return found


def split_scenes(
    names: Sequence[str],
    usable: Sequence[np.ndarray],
    *,
    patch_size: int,
    settings: SplitSettings,
    seed: int,
) -> Split:
    """Divide scenes into training regions and fixed validation windows.

    Args:
        names: scene names, for `validation_scenes` and messages.
        usable: (H, W) bool per scene, pixels that are valid and not ignored; windows without
            any are dropped.
        patch_size: the training patch side (see `largest_patch_size`).

    Raises:
        DataError: when the validation area has no usable pixel.
    """
    return split_by_shapes(
        names,
        [u.shape for u in usable],
        lambda w: bool(usable[w.scene][w.slices].any()),
        patch_size=patch_size,
        settings=settings,
        seed=seed,
    )


def split_by_shapes(
    names: Sequence[str],
    shapes: Sequence[tuple[int, int]],
    has_usable: Callable[[ValidationWindow], bool],
    *,
    patch_size: int,
    settings: SplitSettings,
    seed: int,
) -> Split:
    """`split_scenes` for scenes known by their shapes; `has_usable(window)` says whether a
    validation window holds a usable pixel (streamed training reads the window to tell).
    """
    rng = settings.rng(seed)
    window_px = settings.window_px or patch_size
    mode, areas = _held_out(names, shapes, settings, rng)
    windows: list[ValidationWindow] = []
    for area in areas:
        windows += _tile(area.scene, area.rows, area.cols, window_px)
    if mode == "scenes":
        held_out = {area.scene for area in areas}
        train = tuple(s for s in range(len(names)) if s not in held_out)
    else:
        train = tuple(range(len(names)))
    windows = [w for w in windows if has_usable(w)]
    if not windows:
        raise DataError(
            "the validation area has no valid, labelled pixel. Choose other "
            "data.split.validation_scenes or a larger data.split.validation_share."
        )
    if len(windows) > settings.max_windows:
        keep = np.sort(rng.choice(len(windows), settings.max_windows, replace=False))
        windows = [windows[int(i)] for i in keep]
    return Split(
        train_scenes=train,
        windows=tuple(windows),
        mode=mode,
        shapes=tuple((int(h), int(w)) for h, w in shapes),
        held_out=tuple(areas),
        gap_px=_gap(patch_size, settings),
    )
