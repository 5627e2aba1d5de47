"""Downsampled reads for the report: a scene's preview, its prediction and its truth on one
small grid, so a report of a 20000 × 20000 scene needs memory for the preview only.

Predictions are read with decimated (nearest-neighbour) reads; the truth is read onto the same
small grid; the image is read the same way when it is one file, and strip by strip otherwise.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

from spectraseg.classes import ClassList
from spectraseg.errors import SpectrasegWarning
from spectraseg.evaluate.matching import load_truth
from spectraseg.grid import Grid
from spectraseg.io.prediction_raster import PredictionRaster
from spectraseg.io.rasters import data_band_indexes, open_dataset, open_stack
from spectraseg.models.head import class_masks
from spectraseg.report.composite import choose_composite, preview_shape, stretch
from spectraseg.report.sources import SceneView

__all__ = ["DEFAULT_MAX_PIXELS", "coarse_grid", "read_composite", "read_scene_view"]

log = logging.getLogger(__name__)

# 640 × 640: sharp on a laptop screen, about 0.3 MB per PNG, so a report stays a few MB.
DEFAULT_MAX_PIXELS = 640 * 640
# Rows read at once when an image must be read strip by strip (several files on one grid).
STRIP_ROWS = 256


def coarse_grid(grid: Grid, height: int, width: int) -> Grid:
    """`grid`'s extent on (height, width) pixels."""
    scale = Affine.scale(grid.width / width, grid.height / height)
    return Grid(crs=grid.crs, transform=grid.transform @ scale, width=width, height=height)


def read_composite(
    images: Sequence[Path], shape: tuple[int, int], band_names: Sequence[str] = ()
) -> tuple[np.ndarray, str]:
    """The stretched (h, w, 3) preview of a scene's image files at `shape`, and its caption.

    Args:
        band_names: the bands in file order as the model knows them (the checkpoint's), used
            when the files do not name their bands.
    """
    height, width = shape
    with open_stack(list(images)) as stack:
        names = list(stack.band_names)
        if band_names and len(band_names) == len(names) and choose_composite(names)[0] == (0, 1, 2):
            names = list(band_names)
        chosen, caption = choose_composite(names)
        if len(stack.paths) == 1:
            with open_dataset(stack.paths[0]) as dataset:
                indexes = [data_band_indexes(dataset)[i] for i in chosen]
                out = (3, height, width)
                image = dataset.read(indexes, out_shape=out, resampling=Resampling.nearest)
                valid = np.all(
                    dataset.read_masks(indexes, out_shape=out, resampling=Resampling.nearest) > 0,
                    axis=0,
                )
                image = image.astype(np.float32)
        else:
            image, valid = _strided_read(stack, chosen, height, width)
    return stretch(image, valid), caption


def _strided_read(
    stack: object, chosen: Sequence[int], height: int, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every n-th row and column of a multi-file stack, read strip by strip."""
    from spectraseg.io.rasters import RasterStack

    assert isinstance(stack, RasterStack)
    full_height, full_width = stack.shape
    rows = np.linspace(0, full_height - 1, height).round().astype(int)
    cols = np.linspace(0, full_width - 1, width).round().astype(int)
    image = np.zeros((3, height, width), dtype=np.float32)
    valid = np.zeros((height, width), dtype=bool)
    for start in range(0, full_height, STRIP_ROWS):
        inside = np.flatnonzero((rows >= start) & (rows < start + STRIP_ROWS))
        if inside.size == 0:
            continue
        strip, strip_valid = stack.read(Window(0, start, full_width, STRIP_ROWS))
        local = rows[inside] - start
        image[:, inside] = strip[list(chosen)][:, local][:, :, cols]
        valid[inside] = strip_valid[local][:, cols]
    return image, valid


def read_scene_view(
    name: str,
    prediction: Path,
    truth: Path,
    classes: ClassList,
    *,
    images: Sequence[Path] = (),
    band_names: Sequence[str] = (),
    thresholds: Sequence[float] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    column: str = "class",
) -> tuple[SceneView, np.ndarray | None]:
    """One scene downsampled to at most `max_pixels`: the view, and the probabilities when the
    prediction holds them ((K, h, w), for threshold curves).

    Args:
        thresholds: per-class thresholds for probabilities without a tuned-thresholds tag.
        column: a vector truth's class attribute (`evaluate --class-column`).
    """
    with PredictionRaster(prediction, classes=classes) as raster:
        info = raster.info
        shape = preview_shape(info.grid.height, info.grid.width, max_pixels)
        probs, mask, valid = raster.read_decimated(*shape)
    if mask is None:
        assert probs is not None
        chosen = info.tuned_thresholds or thresholds or (0.5,) * len(info.class_names)
        mask = class_masks(probs, chosen, info.head) & valid[None]
    grid = coarse_grid(info.grid, *shape)
    # A background band of the prediction is not a class of the truth: it is not shown.
    keep = [k for k, n in enumerate(info.class_names) if n in classes.names]
    positions = [classes.index_of(info.class_names[k]) for k in keep]
    with warnings.catch_warnings():
        # Scoring read the same truth and already warned about it (repaired polygons, ...).
        warnings.simplefilter("ignore", SpectrasegWarning)
        truth_mask, ignore = load_truth(truth, grid, classes, column=column)
    truth_mask, mask = truth_mask[positions], mask[keep]
    probs = probs[keep] if probs is not None and info.head == "sigmoid" else None
    composite: np.ndarray | None = None
    caption = "no image found: the masks are drawn on grey"
    if images:
        composite, caption = read_composite(images, shape, band_names)
    view = SceneView(
        name=name,
        composite=composite,
        caption=caption,
        predicted=np.asarray(mask, dtype=bool),
        truth=truth_mask,
        ignore=ignore | ~valid,
        shape=(info.grid.height, info.grid.width),
    )
    return view, probs
