"""What `predict_raster` hands back, and the sink that writes its rows in whole tile blocks.

Outputs for an input `<stem>` are `<stem>_probs.tif`, `<stem>_mask.tif` and the class map
`<stem>_classes.tif`, all on the input's exact grid, each written under a temporary name and
renamed when complete. Their
format (tags, encodings) is `spectraseg.io.prediction_raster`; the mask follows the head's rule
(`spectraseg.models.head.class_masks`). Input pixels that are nodata are nodata in both.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spectraseg.io.geotiff import RasterWriter
from spectraseg.io.prediction_raster import encode_class_map, encode_mask, encode_probabilities
from spectraseg.models.head import Head, class_masks

__all__ = ["BlockRowSink", "PredictionOutputs"]

PathLike = str | os.PathLike[str]

# Rows are handed to the writer in blocks of the GeoTIFF's tile height, so that every tile is
# compressed once, when complete, instead of being flushed half-written and rewritten.
WRITE_BLOCK_ROWS = 256


@dataclass(frozen=True)
class PredictionOutputs:
    """The files one `predict_raster` call wrote, and how long it took."""

    probabilities: Path
    mask: Path | None
    windows: int
    seconds: float
    passes_per_pixel: float = 0.0
    """Network evaluations per raster pixel: TTA passes times window pixels over raster pixels."""
    class_map: Path | None = None
    """`<stem>_classes.tif`, written with the mask."""


class BlockRowSink:
    """Collects finished rows and writes them to the outputs in whole blocks of tile rows."""

    def __init__(
        self,
        probabilities: RasterWriter,
        mask: RasterWriter | None,
        *,
        width: int,
        num_classes: int,
        dtype: str,
        thresholds: Sequence[float],
        head: Head,
        class_map: RasterWriter | None = None,
        class_ids: Sequence[int] | None = None,
    ) -> None:
        self._probabilities = probabilities
        self._mask = mask
        self._class_map = class_map
        self._class_ids = (
            tuple(class_ids) if class_ids is not None else tuple(range(1, num_classes + 1))
        )
        self._dtype = dtype
        self._thresholds = thresholds
        self._head = head
        self._buffer = np.empty((num_classes, WRITE_BLOCK_ROWS, width), dtype=np.float32)
        self._filled = 0
        self._next_row = 0

    def add(self, probs: np.ndarray) -> None:
        """Append rows (K, h, W) below those added before."""
        done = 0
        while done < probs.shape[1]:
            take = min(probs.shape[1] - done, WRITE_BLOCK_ROWS - self._filled)
            self._buffer[:, self._filled : self._filled + take] = probs[:, done : done + take]
            self._filled += take
            done += take
            if self._filled == WRITE_BLOCK_ROWS:
                self.flush()

    def flush(self) -> None:
        if not self._filled:
            return
        block = self._buffer[:, : self._filled]
        self._probabilities.write_rows(encode_probabilities(block, self._dtype), self._next_row)
        if self._mask is not None or self._class_map is not None:
            masks = class_masks(block, self._thresholds, self._head)
            invalid = np.asarray(np.isnan(block).any(axis=0))
            if self._mask is not None:
                encoded = encode_mask(masks, invalid, self._head, self._class_ids)
                self._mask.write_rows(encoded, self._next_row)
            if self._class_map is not None:
                encoded = encode_class_map(block, masks, invalid, self._class_ids)
                self._class_map.write_rows(encoded, self._next_row)
        self._next_row += self._filled
        self._filled = 0
