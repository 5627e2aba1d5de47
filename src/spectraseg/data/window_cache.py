"""`BlockCache`: decoded, normalized blocks of lazy scenes, the least recently used dropped first.

Class-balanced sampling returns to the same places (a rare class lives in a few blocks), and
neighbouring patches share blocks, so keeping a few decoded blocks saves most of the reading,
decompressing, warping and rasterizing a streamed patch would cost. Blocks are aligned squares
of `block_px`; a window is assembled from the blocks it touches. Every step is per pixel (the
indices, normalization, labels), so the assembled window equals the slice of a `Scene`
normalized whole.

Each process keeps its own cache: a DataLoader worker fills its own, bounded by `max_bytes`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from rasterio.windows import Window

from spectraseg.data.lazy_scene import LazyScene
from spectraseg.data.normalize import BandStats, normalize

__all__ = ["DEFAULT_BLOCK_PX", "DEFAULT_CACHE_BYTES", "BlockCache"]

Array = np.ndarray
Block = tuple[Array, Array, Array]  # normalized image, mask, unusable (invalid or ignored)

# A GeoTIFF tile is usually 256 or 512 px: a block of 256 reads whole tiles.
DEFAULT_BLOCK_PX = 256
# Per process: about 40 blocks of 8 bands and a few classes.
DEFAULT_CACHE_BYTES = 128 * 1024**2


class BlockCache:
    """Windows of lazy scenes as training consumes them: normalized image, mask, unusable."""

    def __init__(
        self,
        scenes: Sequence[LazyScene],
        stats: BandStats,
        method: Literal["standard", "percentile"],
        *,
        block_px: int = DEFAULT_BLOCK_PX,
        max_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        self.scenes = list(scenes)
        self.stats = stats
        self.method = method
        self.block_px = block_px
        self.max_bytes = max_bytes
        self._blocks: OrderedDict[tuple[int, int, int], Block] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def read(self, scene: int, row: int, col: int, height: int, width: int) -> Block:
        """(image (C, h, w) float32 normalized, mask (K, h, w) bool, unusable (h, w) bool) of
        a window inside scene `scene`."""
        lazy = self.scenes[scene]
        image = np.empty((lazy.num_bands, height, width), dtype=np.float32)
        mask = np.empty((lazy.num_classes, height, width), dtype=bool)
        unusable = np.empty((height, width), dtype=bool)
        size = self.block_px
        for block_row in range(row // size, (row + height - 1) // size + 1):
            for block_col in range(col // size, (col + width - 1) // size + 1):
                block = self._block(scene, block_row, block_col)
                top, left = block_row * size, block_col * size
                rows = slice(max(row, top), min(row + height, top + size))
                cols = slice(max(col, left), min(col + width, left + size))
                into = (
                    slice(rows.start - row, rows.stop - row),
                    slice(cols.start - col, cols.stop - col),
                )
                source = (
                    slice(rows.start - top, rows.stop - top),
                    slice(cols.start - left, cols.stop - left),
                )
                image[(slice(None), *into)] = block[0][(slice(None), *source)]
                mask[(slice(None), *into)] = block[1][(slice(None), *source)]
                unusable[into] = block[2][source]
        return image, mask, unusable

    def _block(self, scene: int, block_row: int, block_col: int) -> Block:
        key = (scene, block_row, block_col)
        found = self._blocks.get(key)
        if found is not None:
            self._blocks.move_to_end(key)
            self.hits += 1
            return found
        self.misses += 1
        block = self._decode(scene, block_row, block_col)
        self._blocks[key] = block
        self._bytes += sum(part.nbytes for part in block)
        while self._bytes > self.max_bytes and len(self._blocks) > 1:
            _, dropped = self._blocks.popitem(last=False)
            self._bytes -= sum(part.nbytes for part in dropped)
        return block

    def _decode(self, scene: int, block_row: int, block_col: int) -> Block:
        lazy = self.scenes[scene]
        height, width = lazy.shape
        size = self.block_px
        top, left = block_row * size, block_col * size
        window = Window(left, top, min(size, width - left), min(size, height - top))
        image, valid, mask, ignore = lazy.read(window)
        normalized = normalize(
            image, self.stats, self.method, band_names=lazy.band_names, valid=valid
        )
        return normalized, mask, ~valid | ignore

    def __getstate__(self) -> dict[str, Any]:
        # A spawned worker starts with an empty cache rather than a copy of this one.
        state = dict(self.__dict__)
        state["_blocks"] = OrderedDict()
        state["_bytes"] = 0
        return state
