"""What `predict_raster` writes: the probabilities and mask rasters, block by block.

Outputs for an input `<stem>`, both on the input's exact grid, each written under a temporary
name and renamed when complete:
- `<stem>_probs.tif`: one band per class, described by the class name. float32 with NaN as
  nodata, or uint8 holding round(254 x p) with 255 as nodata (tag
  SPECTRASEG_PROBABILITY_SCALE=254).
- `<stem>_mask.tif`: multi-label (sigmoid head): one 0/1 band per class, from the per-class
  thresholds (`p >= t`; a threshold of 1 selects nothing); multi-class (softmax head): one
  band of class positions 0..K-1 (argmax). 255 is nodata.
Both carry SPECTRASEG_KIND (probabilities | mask), SPECTRASEG_CLASSES and
SPECTRASEG_THRESHOLDS (JSON lists) and SPECTRASEG_HEAD tags. Input pixels that are nodata are
nodata in both outputs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from spectraseg.grid import Grid
from spectraseg.io.geotiff import RasterWriter
from spectraseg.predict.inputs import Head
from spectraseg.train.metrics import binarize

__all__ = [
    "BlockRowSink",
    "PredictionOutputs",
    "encode_probabilities",
    "make_mask",
    "mask_writer",
    "output_paths",
    "probabilities_writer",
]

PathLike = str | os.PathLike[str]

MASK_NODATA = 255
PROBABILITY_SCALE = 254  # uint8 probabilities: round(254 p), so that 255 stays free for nodata
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


def output_paths(output: PathLike, stem: str) -> tuple[Path, Path]:
    """(probabilities, mask) paths for input `stem` in folder `output`."""
    folder = Path(output)
    return folder / f"{stem}_probs.tif", folder / f"{stem}_mask.tif"


def encode_probabilities(probs: np.ndarray, dtype: str) -> np.ndarray:
    """Probabilities (K, h, w) with NaN nodata as stored: float32, or uint8 254 x p / 255.

    Example:
        >>> encode_probabilities(np.array([[[0.0, 0.5, 1.0, np.nan]]]), "uint8").tolist()
        [[[0, 127, 254, 255]]]
    """
    if dtype == "float32":
        stored: np.ndarray = probs.astype(np.float32, copy=False)
        return stored
    scaled: np.ndarray = np.rint(np.nan_to_num(probs, nan=0.0) * PROBABILITY_SCALE).astype(np.uint8)
    scaled[np.isnan(probs)] = MASK_NODATA
    return scaled


def make_mask(probs: np.ndarray, thresholds: Sequence[float], head: Head) -> np.ndarray:
    """The mask raster's content for probabilities (K, h, w), 255 where they are NaN.

    Sigmoid heads: (K, h, w) 0/1 from `p >= threshold` (a threshold of 1 selects nothing).
    Softmax heads: (1, h, w) the position of the most probable class.

    Example:
        >>> probs = np.array([[[0.2, 0.7, np.nan]], [[0.6, 0.1, np.nan]]])
        >>> make_mask(probs, [0.5, 0.5], "sigmoid").tolist()
        [[[0, 1, 255]], [[1, 0, 255]]]
        >>> make_mask(probs, [0.5, 0.5], "softmax").tolist()
        [[[1, 0, 255]]]
    """
    invalid = np.isnan(probs).any(axis=0)
    if head == "softmax":
        ids: np.ndarray = np.argmax(np.nan_to_num(probs, nan=-1.0), axis=0).astype(np.uint8)[None]
    else:
        values = np.asarray(thresholds, dtype=np.float64)
        selected = binarize(probs, values) & (values < 1.0)[:, None, None]
        ids = selected.astype(np.uint8)
    ids[:, invalid] = MASK_NODATA
    return ids


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
    ) -> None:
        self._probabilities = probabilities
        self._mask = mask
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
        if self._mask is not None:
            self._mask.write_rows(make_mask(block, self._thresholds, self._head), self._next_row)
        self._next_row += self._filled
        self._filled = 0


def _output_tags(
    kind: str, class_names: Sequence[str], thresholds: Sequence[float], head: Head
) -> dict[str, str]:
    return {
        "SPECTRASEG_KIND": kind,
        "SPECTRASEG_CLASSES": json.dumps(list(class_names)),
        "SPECTRASEG_THRESHOLDS": json.dumps([float(t) for t in thresholds]),
        "SPECTRASEG_HEAD": head,
    }


def probabilities_writer(
    path: Path,
    grid: Grid,
    class_names: Sequence[str],
    thresholds: Sequence[float],
    *,
    head: Head,
    dtype: Literal["float32", "uint8"],
    cog: bool,
    overwrite: bool,
) -> RasterWriter:
    """The writer of `<stem>_probs.tif`: one band per class, float32 or uint8 254 x p."""
    tags = _output_tags("probabilities", class_names, thresholds, head)
    if dtype == "uint8":
        tags["SPECTRASEG_PROBABILITY_SCALE"] = str(PROBABILITY_SCALE)
    return RasterWriter(
        path,
        grid,
        len(class_names),
        dtype,
        band_names=class_names,
        nodata=float("nan") if dtype == "float32" else MASK_NODATA,
        tags=tags,
        overwrite=overwrite,
        cog=cog,
    )


def mask_writer(
    path: Path,
    grid: Grid,
    class_names: Sequence[str],
    thresholds: Sequence[float],
    *,
    head: Head,
    cog: bool,
    overwrite: bool,
) -> RasterWriter:
    """The writer of `<stem>_mask.tif`: a 0/1 band per class (sigmoid) or class positions."""
    multi_label = head == "sigmoid"
    return RasterWriter(
        path,
        grid,
        len(class_names) if multi_label else 1,
        "uint8",
        band_names=class_names if multi_label else ("class",),
        nodata=MASK_NODATA,
        tags=_output_tags("mask", class_names, thresholds, head),
        overwrite=overwrite,
        cog=cog,
        overview_resampling="nearest",
    )
