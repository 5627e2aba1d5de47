"""Training data read from the rasters window by window: `prepare_streamed_training_data`.

The streamed twin of `prepare_training_data` for training sets larger than memory. It takes
`LazyScene`s and gives the same `TrainingData`: the same split (validation windows that hold a
usable pixel, the same seeded subset), band statistics on the training region, a
`StreamedWindowSampler` whose class weights, positions and draws are `WindowSampler`'s, and a
`StreamedPatchDataset` whose patches are the in-memory dataset's (read through a `BlockCache`
instead of cut from whole normalized arrays). Memory: one strip of rows while indexing, two
bits per training pixel, the cache of each process, and the validation windows.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from rasterio.windows import Window

from spectraseg.data.augment import AugmentSettings, augment
from spectraseg.data.dataset import (
    Patch,
    PatchDataset,
    TrainingData,
    ValidationSet,
    _log_class_draws,
    clamp_patch_size,
)
from spectraseg.data.lazy_scene import LazyScene
from spectraseg.data.normalize import BandStats, BandStatsAccumulator, normalize
from spectraseg.data.sampling import SamplingSettings
from spectraseg.data.settings import DataSettings
from spectraseg.data.split import ValidationWindow, largest_patch_size, split_by_shapes
from spectraseg.data.streamed_sampling import ScanResult, StreamedWindowSampler, scan_scene
from spectraseg.data.window_cache import DEFAULT_CACHE_BYTES, BlockCache
from spectraseg.errors import DataError, SpectrasegWarning

__all__ = ["StreamedPatchDataset", "prepare_streamed_training_data", "strip_rows_for"]

log = logging.getLogger(__name__)

# Bytes of one strip of rows while indexing: the pixels, their float64 copies for the band
# statistics, the masks and the box sums.
STRIP_BYTES = 64 * 1024**2


def strip_rows_for(width: int, channels: int, num_classes: int, patch_size: int) -> int:
    """Rows per strip so that one strip costs about `STRIP_BYTES`, and at least one patch.

    Example:
        >>> strip_rows_for(10_000, 8, 5, 128)
        128
    """
    per_row = width * (12 * channels + num_classes + 24)
    return max(patch_size, STRIP_BYTES // per_row)


class StreamedPatchDataset(PatchDataset):
    """`PatchDataset` over `LazyScene`s: the same patch for the same (seed, epoch, index).

    Patches are assembled from the cache's blocks; every DataLoader worker keeps its own cache
    and opens its own files.
    """

    def __init__(
        self,
        blocks: BlockCache,
        sampler: StreamedWindowSampler,
        *,
        length: int,
        augment_settings: AugmentSettings,
        seed: int,
    ) -> None:
        super().__init__(
            [], [], [], sampler, length=length, augment_settings=augment_settings, seed=seed
        )
        self.blocks = blocks

    def __getitem__(self, index: int) -> Patch:
        self.check_index(index)
        rng = np.random.default_rng([self.seed, self.epoch, index])
        window, _ = self.sampler.draw(rng)
        size = self.patch_size
        image, mask, ignore = augment(
            *self.blocks.read(window.scene, window.row, window.col, size, size),
            rng,
            self.augment_settings,
        )
        return torch.from_numpy(image), torch.from_numpy(mask), torch.from_numpy(ignore)


class _UsableRows:
    """`has_usable(window)` for the split: reads the row band of consecutive windows once."""

    def __init__(self, scenes: Sequence[LazyScene]) -> None:
        self.scenes = scenes
        self._band: tuple[tuple[int, int, int, int], np.ndarray] | None = None

    def __call__(self, window: ValidationWindow) -> bool:
        scene = self.scenes[window.scene]
        key = (window.scene, window.row, window.height, window.col)
        if self._band is None or self._band[0][:3] != key[:3] or window.col < self._band[0][3]:
            # From this window to the scene's right edge: the windows after it in the row.
            read = Window(window.col, window.row, scene.shape[1] - window.col, window.height)
            self._band = (key, scene.usable(read))
        start = window.col - self._band[0][3]
        return bool(self._band[1][:, start : start + window.width].any())


def prepare_streamed_training_data(
    scenes: Sequence[LazyScene],
    *,
    data: DataSettings,
    sampling: SamplingSettings,
    augment_settings: AugmentSettings,
    size_multiple: int,
    patches_per_epoch: int,
    seed: int,
    stats: BandStats | None = None,
    cache_bytes: int = DEFAULT_CACHE_BYTES,
    strip_rows: int | None = None,
    scored_margin_px: int = 0,
) -> TrainingData:
    """Split, index and normalize lazy scenes the way `prepare_training_data` does scenes.

    Args:
        size_multiple: what patch sides must divide by (2**depth for a U-Net).
        stats: normalization statistics to reuse (when resuming); default computed on the
            training part of the split, strip by strip.
        scored_margin_px: the patch border the loss does not score (`train.centre_crop_px`).
        cache_bytes: decoded blocks each process keeps.
        strip_rows: rows read at a time while indexing; default `strip_rows_for` the scenes.
    """
    if not scenes:
        raise DataError("no scenes to train on.")
    names, shapes = [s.name for s in scenes], [s.shape for s in scenes]
    largest = largest_patch_size(shapes, data.split)
    patch_size = clamp_patch_size(data.patch_size, largest, size_multiple)
    split = split_by_shapes(
        names,
        shapes,
        _UsableRows(scenes),
        patch_size=patch_size,
        settings=data.split,
        seed=seed,
    )
    log.info("%s", split.describe(names))
    train_scenes = [scenes[i] for i in split.train_scenes]
    rows = strip_rows or strip_rows_for(
        max(s.shape[1] for s in scenes), scenes[0].num_bands, scenes[0].num_classes, patch_size
    )
    accumulator = BandStatsAccumulator(scenes[0].band_names) if stats is None else None
    scans: list[ScanResult] = []
    for position, scene in zip(split.train_scenes, train_scenes, strict=True):
        scans.append(
            scan_scene(
                scene,
                split.excluded(position),
                patch_size=patch_size,
                max_invalid_share=data.max_invalid_share,
                strip_rows=rows,
                on_pixels=accumulator.add if accumulator is not None else None,
            )
        )
        log.info("indexed %s (%d x %d px) strip by strip", scene.name, *scene.shape)
    _check_scans(train_scenes, scans)
    if accumulator is not None:
        stats = accumulator.result()
    assert stats is not None
    sampler = StreamedWindowSampler(
        train_scenes,
        scans,
        patch_size=patch_size,
        settings=sampling,
        rng=np.random.default_rng([seed, 1]),
        strip_rows=rows,
        scored_margin_px=scored_margin_px,
    )
    _log_class_draws(sampler, scenes[0].class_names)
    blocks = BlockCache(train_scenes, stats, data.normalization, max_bytes=cache_bytes)
    train = StreamedPatchDataset(
        blocks,
        sampler,
        length=patches_per_epoch,
        augment_settings=augment_settings,
        seed=seed,
    )
    validation = read_validation(scenes, split.windows, stats, data)
    return TrainingData(train, validation, stats, data.normalization, patch_size, split)


def read_validation(
    scenes: Sequence[LazyScene],
    windows: Sequence[ValidationWindow],
    stats: BandStats,
    data: DataSettings,
) -> ValidationSet:
    """The fixed validation windows, each read and normalized on its own."""
    images, masks, ignored = [], [], []
    for w in windows:
        scene = scenes[w.scene]
        image, valid, mask, ignore = scene.read(Window(w.col, w.row, w.width, w.height))
        images.append(
            normalize(image, stats, data.normalization, band_names=scene.band_names, valid=valid)
        )
        masks.append(mask)
        ignored.append(~valid | ignore)
    return ValidationSet(
        images=tuple(images), masks=tuple(masks), ignored=tuple(ignored), windows=tuple(windows)
    )


def _check_scans(scenes: Sequence[LazyScene], scans: Sequence[ScanResult]) -> None:
    """`prepare_training_data`'s checks, on what the pass over the training scenes found."""
    if not any(scan.labelled for scan in scans):
        raise DataError(
            "no scene has a labelled pixel of any known class. Check the label files and the "
            "class names in classes.yaml."
        )
    present = np.logical_or.reduce([scan.present for scan in scans])
    missing = [name for name, seen in zip(scenes[0].class_names, present, strict=True) if not seen]
    if missing:
        warnings.warn(
            f"class(es) {', '.join(missing)} have no pixel in any training scene.",
            SpectrasegWarning,
            stacklevel=3,
        )
