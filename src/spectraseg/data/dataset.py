"""Training patches drawn lazily from scenes in memory, and the fixed validation windows.

`prepare_training_data` turns labelled scenes into what training consumes: it clamps the patch
size to what the scenes hold, splits them (`data/split.py`), computes normalization statistics
on the training part only, normalizes, and builds a `PatchDataset` (class-balanced windows from
`data/sampling.py`, augmented by `data/augment.py`) and a `ValidationSet`.

A `PatchDataset` item is a pure function of (seed, epoch, index): every DataLoader worker draws
the same patches the main process would, so runs are repeatable whatever the number of workers.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from spectraseg.data.augment import AugmentSettings, augment
from spectraseg.data.normalize import BandStats, compute_band_stats, normalize
from spectraseg.data.sampling import SamplingScene, SamplingSettings, WindowSampler
from spectraseg.data.scene import Scene
from spectraseg.data.settings import DataSettings
from spectraseg.data.split import Split, ValidationWindow, largest_patch_size, split_scenes
from spectraseg.errors import ConfigError, DataError, SpectrasegWarning

__all__ = [
    "PatchDataset",
    "TrainingData",
    "ValidationSet",
    "clamp_patch_size",
    "prepare_training_data",
]

log = logging.getLogger(__name__)

Patch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def clamp_patch_size(requested: int, largest: int, multiple: int) -> int:
    """The training patch side: `requested`, or the largest multiple of `multiple` that fits.

    Args:
        requested: `data.patch_size`; must be a multiple of `multiple`.
        largest: the largest side the scenes and the split can hold.
        multiple: what the model needs sizes to divide by (2**depth for a U-Net).

    Example:
        >>> clamp_patch_size(128, 300, 16)
        128
    """
    if requested % multiple:
        lower = max(multiple, requested // multiple * multiple)
        raise ConfigError(
            f"data.patch_size {requested} px is not a multiple of {multiple}, which the model's "
            f"depth needs; use {lower} or {lower + multiple}."
        )
    if requested <= largest:
        return requested
    fitting = largest // multiple * multiple
    if fitting < multiple:
        raise DataError(
            f"the training scenes hold at most {largest} px patches, less than the {multiple} px "
            "the model needs. Use larger scenes, fewer of them per split, or a shallower model."
        )
    warnings.warn(
        f"data.patch_size {requested} px does not fit the training scenes (at most {largest} px "
        f"after the split); using {fitting} px patches.",
        SpectrasegWarning,
        stacklevel=2,
    )
    return fitting


class PatchDataset(Dataset[Patch]):
    """`length` random training patches per epoch: (image, mask, ignore) tensors.

    image is (C, P, P) float32, mask (K, P, P) bool, ignore (P, P) bool. Call `set_epoch` before
    each epoch (before creating the DataLoader iterator) to draw new patches.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        masks: Sequence[np.ndarray],
        ignored: Sequence[np.ndarray],
        sampler: WindowSampler,
        *,
        length: int,
        augment_settings: AugmentSettings,
        seed: int,
    ) -> None:
        self.images = list(images)
        self.masks = list(masks)
        self.ignored = list(ignored)
        self.sampler = sampler
        self.length = length
        self.augment_settings = augment_settings
        self.seed = seed
        self.epoch = 0

    @property
    def patch_size(self) -> int:
        return self.sampler.patch_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def check_index(self, index: int) -> None:
        """Any index could draw a patch, so one past the end must stop iteration by hand:
        `list()` and `for` over the dataset would otherwise never end."""
        if not 0 <= index < self.length:
            raise IndexError(f"patch {index} of an epoch of {self.length}")

    def __getitem__(self, index: int) -> Patch:
        self.check_index(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        window, _ = self.sampler.draw(rng)
        rows = slice(window.row, window.row + self.patch_size)
        cols = slice(window.col, window.col + self.patch_size)
        image, mask, ignore = augment(
            self.images[window.scene][:, rows, cols],
            self.masks[window.scene][:, rows, cols],
            self.ignored[window.scene][rows, cols],
            rng,
            self.augment_settings,
        )
        return torch.from_numpy(image), torch.from_numpy(mask), torch.from_numpy(ignore)


@dataclass(frozen=True, eq=False)
class ValidationSet:
    """The fixed validation windows, cut out once: (image, mask, ignore) numpy arrays each."""

    images: tuple[np.ndarray, ...]
    masks: tuple[np.ndarray, ...]
    ignored: tuple[np.ndarray, ...]
    windows: tuple[ValidationWindow, ...]

    def __len__(self) -> int:
        return len(self.windows)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return iter(zip(self.images, self.masks, self.ignored, strict=True))

    @property
    def pixel_count(self) -> int:
        return sum(int(np.count_nonzero(~ignore)) for ignore in self.ignored)


@dataclass(frozen=True, eq=False)
class TrainingData:
    """Everything training needs from the scenes."""

    train: PatchDataset
    validation: ValidationSet
    stats: BandStats
    normalization: str
    patch_size: int
    split: Split


def _check_labelled(scenes: Sequence[Scene]) -> None:
    if not scenes:
        raise DataError("no scenes to train on.")
    unlabelled = [s.name for s in scenes if s.mask is None]
    if unlabelled:
        raise DataError(
            f"scene(s) {', '.join(unlabelled)} have no labels; training needs labels for "
            "every scene. Add them or move the scenes out of the data folder."
        )
    if not any(bool(np.any(s.mask & ~s.ignored()[None])) for s in scenes if s.mask is not None):
        raise DataError(
            "no scene has a labelled pixel of any known class. Check the label files and the "
            "class names in classes.yaml."
        )


def prepare_training_data(
    scenes: Sequence[Scene],
    *,
    data: DataSettings,
    sampling: SamplingSettings,
    augment_settings: AugmentSettings,
    size_multiple: int,
    patches_per_epoch: int,
    seed: int,
    stats: BandStats | None = None,
    scored_margin_px: int = 0,
) -> TrainingData:
    """Split, normalize and index labelled scenes (bands and indices already stacked).

    Args:
        size_multiple: what patch sides must divide by (2**depth for a U-Net).
        stats: normalization statistics to reuse (when resuming); default computed on the
            training part of the split.
        scored_margin_px: the patch border the loss does not score (`train.centre_crop_px`):
            pixels drawn for their class are placed inside it where a window allows.
    """
    _check_labelled(scenes)
    usable = [~s.ignored() for s in scenes]
    largest = largest_patch_size([s.shape for s in scenes], data.split)
    patch_size = clamp_patch_size(data.patch_size, largest, size_multiple)
    names = [s.name for s in scenes]
    split = split_scenes(names, usable, patch_size=patch_size, settings=data.split, seed=seed)
    log.info("%s", split.describe(names))
    train_scenes = [scenes[i] for i in split.train_scenes]
    if stats is None:
        regions = split.regions
        stats = compute_band_stats(
            (
                (s.image, s.valid if r is None else s.valid & r)
                for s, r in zip(train_scenes, regions, strict=True)
            ),
            scenes[0].band_names,
        )
    images = [
        normalize(s.image, stats, data.normalization, band_names=s.band_names, valid=s.valid)
        for s in scenes
    ]
    sampler = WindowSampler(
        [
            SamplingScene(
                mask=_mask(scenes[i]), usable=usable[i], region=region, valid=scenes[i].valid
            )
            for i, region in zip(split.train_scenes, split.regions, strict=True)
        ],
        patch_size=patch_size,
        max_invalid_share=data.max_invalid_share,
        settings=sampling,
        rng=np.random.default_rng([seed, 1]),
        scored_margin_px=scored_margin_px,
    )
    _log_class_draws(sampler, scenes[0].class_names)
    train = PatchDataset(
        [images[i] for i in split.train_scenes],
        [_mask(scenes[i]) for i in split.train_scenes],
        [~usable[i] for i in split.train_scenes],
        sampler,
        length=patches_per_epoch,
        augment_settings=augment_settings,
        seed=seed,
    )
    windows = split.windows
    validation = ValidationSet(
        images=tuple(images[w.scene][(slice(None), *w.slices)] for w in windows),
        masks=tuple(_mask(scenes[w.scene])[(slice(None), *w.slices)] for w in windows),
        ignored=tuple(~usable[w.scene][w.slices] for w in windows),
        windows=windows,
    )
    return TrainingData(train, validation, stats, data.normalization, patch_size, split)


def _mask(scene: Scene) -> np.ndarray:
    if scene.mask is None:
        raise DataError(f"{scene.name}: no labels.")
    return scene.mask


def _log_class_draws(sampler: WindowSampler, class_names: Sequence[str]) -> None:
    names = [*class_names, "background"]
    shares = sampler.pixel_counts / max(1, int(sampler.pixel_counts.sum()))
    parts = [
        f"{name} {share:.1%} of pixels -> {probability:.1%} of draws"
        for name, share, probability in zip(
            names, shares, sampler.class_probabilities, strict=False
        )
    ]
    log.info("class-balanced patches: %s", "; ".join(parts))
