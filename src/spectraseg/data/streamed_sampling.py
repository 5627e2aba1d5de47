"""Class-balanced windows over scenes too large for memory: `WindowSampler`'s draws, built
strip by strip.

`WindowSampler` indexes whole (H, W) arrays: the usable mask, the allowed patch corners, each
pixel's rarest class and its sorted positions (eight bytes a pixel). Here the same index is
built from strips of rows read one after the other, keeping only what drawing needs: the
allowed corners as packed bits (one bit a pixel), the per-class pixel counts and, per class and
scene, the same subsample of at most `max_locations_per_class` positions. With the same random
generator the positions, hence the draws, are those of `WindowSampler`: it draws
`rng.choice(n, m)` ranks among the n positions of a class in row-major order, and so do we,
then a pass over the strips keeps the positions of those ranks.

The passes (`scan_scene` reads pixels and labels, the others labels only):
1. valid pixels -> allowed patch corners, and usable pixels (valid, not ignored), as bits;
2. drawable pixels (usable and inside an allowed patch) -> pixels per class, hence the weights;
3. each drawable pixel's rarest class -> pixels credited to each class and scene;
4. the positions of the chosen ranks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from spectraseg.data.lazy_scene import LazyScene
from spectraseg.data.sampling import (
    PatchWindow,
    SamplingSettings,
    WindowSampler,
    allowed_windows,
    class_pixel_counts,
    class_weights,
    rarest_class,
    window_around,
)
from spectraseg.errors import DataError

__all__ = ["PackedBits", "ScanResult", "StreamedWindowSampler", "scan_scene", "strips"]

log = logging.getLogger(__name__)

Array = np.ndarray
Rectangle = tuple[tuple[int, int], tuple[int, int]]


class PackedBits:
    """An (H, W) bool array stored as bits: 10000 x 10000 takes 12.5 MB."""

    def __init__(self, height: int, width: int) -> None:
        self.shape = (height, width)
        self._bits = np.zeros((height, -(-width // 8)), dtype=np.uint8)

    def set_rows(self, start: int, rows: Array) -> None:
        """Store (h, W) bool `rows` at rows `start` to `start + h`."""
        self._bits[start : start + rows.shape[0]] = np.packbits(rows, axis=1)

    def rows(self, start: int, stop: int) -> Array:
        """(stop - start, W) bool."""
        return np.unpackbits(self._bits[start:stop], axis=1, count=self.shape[1]).astype(bool)

    def get(self, row: int, col: int) -> bool:
        return bool((self._bits[row, col >> 3] >> (7 - (col & 7))) & 1)

    def any(self) -> bool:
        return bool(self._bits.any())


def strips(height: int, width: int, rows: int) -> Iterator[Window]:
    """Full-width windows of `rows` rows covering height x width, top to bottom."""
    for row in range(0, height, rows):
        yield Window(0, row, width, min(rows, height - row))


def region_rows(shape: tuple[int, int], excluded: Rectangle | None, start: int, stop: int) -> Array:
    """(stop - start, W) bool: where patches may lie, for rows `start` to `stop`."""
    region = np.ones((stop - start, shape[1]), dtype=bool)
    if excluded is not None:
        (top, bottom), (left, right) = excluded
        top, bottom = max(top, start) - start, min(bottom, stop) - start
        if bottom > top:
            region[top:bottom, left:right] = False
    return region


@dataclass(frozen=True)
class ScanResult:
    """What the pixel pass over one scene found.

    Attributes:
        usable: valid and not ignored pixels.
        allowed: top-left corners of the patches that may be drawn (`allowed_windows`).
        present: (K,) bool, classes with any pixel (ignored or not).
        labelled: whether any usable pixel is in a class.
    """

    usable: PackedBits
    allowed: PackedBits
    present: Array
    labelled: bool


def scan_scene(
    scene: LazyScene,
    excluded: Rectangle | None,
    *,
    patch_size: int,
    max_invalid_share: float,
    strip_rows: int,
    on_pixels: Callable[[Array, Array], None] | None = None,
) -> ScanResult:
    """Read a scene strip by strip: usable pixels and allowed patch corners, as bits.

    A patch is allowed by its share of nodata (valid) pixels, not of unlabelled ones, as in
    `allowed_windows`. `on_pixels(image, valid)` sees each strip's pixels, valid only where
    patches may lie (band statistics are computed on the training region only). Memory: one
    strip and the last `patch_size - 1` valid rows.
    """
    height, width = scene.shape
    corners = (max(0, height - patch_size + 1), max(0, width - patch_size + 1))
    usable_bits = PackedBits(height, width)
    allowed_bits = PackedBits(*corners)
    present = np.zeros(scene.num_classes, dtype=bool)
    labelled = False
    tail = np.zeros((0, width), dtype=bool)  # the last rows, for patches reaching back
    for window in strips(height, width, strip_rows):
        start, stop = int(window.row_off), int(window.row_off + window.height)
        image, valid, mask, ignore = scene.read(window)
        usable = valid & ~ignore
        region = region_rows(scene.shape, excluded, start, stop)
        if on_pixels is not None:
            on_pixels(image, valid & region)
        del image
        present |= mask.any(axis=(1, 2))
        labelled = labelled or bool((mask & usable[None]).any())
        usable_bits.set_rows(start, usable)
        rows = np.concatenate([tail, valid])
        first = stop - rows.shape[0]
        if rows.shape[0] >= patch_size and width >= patch_size:
            allowed = allowed_windows(
                rows, region_rows(scene.shape, excluded, first, stop), patch_size, max_invalid_share
            )
            allowed_bits.set_rows(first, allowed)
        tail = rows[max(0, rows.shape[0] - patch_size + 1) :]
    return ScanResult(usable_bits, allowed_bits, present, labelled)


def covered_rows(allowed: PackedBits, patch_size: int, start: int, stop: int, width: int) -> Array:
    """(stop - start, W) bool: pixels of rows `start` to `stop` inside an allowed patch."""
    size = patch_size
    block = np.zeros((stop - start + size - 1, width + size - 1), dtype=np.int32)
    first, last = max(0, start - size + 1), min(stop, allowed.shape[0])
    if last > first:
        top = first - (start - size + 1)
        block[top : top + last - first, size - 1 : size - 1 + allowed.shape[1]] = allowed.rows(
            first, last
        )
    # Sum over every size x size box: a pixel is covered when a corner lies up-left of it.
    sums = np.zeros((block.shape[0] + 1, block.shape[1] + 1), dtype=np.int64)
    np.cumsum(np.cumsum(block, axis=0), axis=1, out=sums[1:, 1:])
    boxes = sums[size:, size:] - sums[:-size, size:] - sums[size:, :-size] + sums[:-size, :-size]
    covered: Array = boxes > 0
    return covered


class StreamedWindowSampler(WindowSampler):
    """`WindowSampler` over `LazyScene`s: the same class weights, positions and draws, from an
    index built strip by strip.

    Memory: two bits per pixel (usable pixels and allowed corners) and at most
    `max_locations_per_class` positions per class and scene; building it reads the labels of
    every training scene three times more (no pixels).
    """

    def __init__(
        self,
        scenes: Sequence[LazyScene],
        scans: Sequence[ScanResult],
        *,
        patch_size: int,
        settings: SamplingSettings,
        rng: np.random.Generator,
        strip_rows: int,
        scored_margin_px: int = 0,
    ) -> None:
        """Index the scenes' pixels by class from their scans (`scan_scene`).

        Raises:
            DataError: when no patch of `patch_size` can be drawn from any scene, or none of
                the patches that can holds a labelled pixel.
        """
        # Not WindowSampler.__init__: it needs whole arrays. `draw` is inherited unchanged.
        if not scenes:
            raise DataError("no training scenes to draw patches from.")
        self.patch_size = patch_size
        self.scored_margin_px = scored_margin_px
        self.num_classes = scenes[0].num_classes
        self._scenes = list(scenes)
        self._scans = list(scans)
        self._strip_rows = strip_rows
        if not any(scan.allowed.any() for scan in scans):
            raise DataError(
                f"no {patch_size} px training patch has at most data.max_invalid_share invalid "
                "(nodata) pixels. Lower data.patch_size or raise data.max_invalid_share."
            )
        self.pixel_counts = np.zeros(self.num_classes + 1, dtype=np.int64)
        for s in range(len(scenes)):
            for _, mask, drawable in self._drawable_strips(s):
                self.pixel_counts += class_pixel_counts(mask, drawable)
        if not self.pixel_counts.any():
            raise DataError(
                f"no labelled pixel lies in a {patch_size} px training patch with at most "
                "data.max_invalid_share invalid (nodata) pixels inside the training region. "
                "Label more of the scenes, lower data.patch_size or raise "
                "data.max_invalid_share."
            )
        self.weights = class_weights(self.pixel_counts, settings)
        self._counts = np.zeros((len(scenes), self.num_classes + 1), dtype=np.int64)
        for s in range(len(scenes)):
            for _, mask, drawable in self._drawable_strips(s):
                assigned = rarest_class(mask, drawable, self.weights)
                counted = np.bincount(assigned[assigned >= 0], minlength=self.num_classes + 1)
                self._counts[s] += counted.astype(np.int64)
        # The ranks WindowSampler's rng.choice(members, m) keeps, drawn in its order.
        limit = settings.max_locations_per_class
        ranks = [
            [
                rng.choice(int(n), limit, replace=False) if n > limit else None
                for n in self._counts[s]
            ]
            for s in range(len(scenes))
        ]
        self._locations = [self._positions(s, ranks[s]) for s in range(len(scenes))]
        self._widths = [scene.shape[1] for scene in scenes]
        credited = self._counts.sum(axis=0).astype(np.float64)
        mass = credited * self.weights
        self.class_probabilities = mass / mass.sum()
        log.debug("patch classes drawn with probabilities %s", self.class_probabilities.round(3))

    def _drawable_strips(self, s: int) -> Iterator[tuple[int, Array, Array]]:
        """(first row, mask, drawable) per strip of training scene `s`: labels only."""
        scene, scan = self._scenes[s], self._scans[s]
        height, width = scene.shape
        for window in strips(height, width, self._strip_rows):
            start, stop = int(window.row_off), int(window.row_off + window.height)
            mask, _ = scene.labels.read(window)
            covered = covered_rows(scan.allowed, self.patch_size, start, stop, width)
            yield start, mask, scan.usable.rows(start, stop) & covered

    def _positions(self, s: int, ranks: Sequence[Array | None]) -> list[Array]:
        """Per class, the flat positions of scene `s` WindowSampler keeps: all of them, or
        those of the chosen ranks, in the order the ranks were drawn."""
        width = self._scenes[s].shape[1]
        kept: list[list[Array]] = [[] for _ in range(self.num_classes + 1)]
        chosen = [
            (np.sort(r), np.argsort(r, kind="stable")) if r is not None else None for r in ranks
        ]
        seen = np.zeros(self.num_classes + 1, dtype=np.int64)
        for start, mask, drawable in self._drawable_strips(s):
            assigned = rarest_class(mask, drawable, self.weights).ravel()
            for k in range(self.num_classes + 1):
                members = np.flatnonzero(assigned == k) + start * width
                found = members.size
                picked = chosen[k]
                if picked is not None:
                    sorted_ranks = picked[0]
                    low = np.searchsorted(sorted_ranks, seen[k])
                    high = np.searchsorted(sorted_ranks, seen[k] + found)
                    members = members[sorted_ranks[low:high] - seen[k]]
                seen[k] += found
                kept[k].append(members.astype(np.int64))
        locations = []
        for k in range(self.num_classes + 1):
            members = np.concatenate(kept[k]) if kept[k] else np.zeros(0, dtype=np.int64)
            picked = chosen[k]
            if picked is not None:
                # Back from rank order to the order the ranks were drawn in.
                ordered = np.empty_like(members)
                ordered[picked[1]] = members
                members = ordered
            locations.append(members)
        return locations

    def _window_around(
        self, scene: int, row: int, col: int, rng: np.random.Generator
    ) -> PatchWindow:
        """`WindowSampler._window_around` on the packed corners: the same random calls."""
        allowed = self._scans[scene].allowed
        return window_around(allowed, scene, row, col, self.patch_size, rng, self.scored_margin_px)
