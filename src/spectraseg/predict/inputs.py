"""The input of `predict_raster`: the raster opened in the model's band layout, read by window.

`open_input` matches the raster's bands to the model's by name and checks its pixel size;
`read_windows` reads the window plan a row of windows at a time, in blocks of columns, so that
the input held in memory does not grow with the raster's width or height.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from spectraseg.classes import Colour
from spectraseg.errors import BandError, SpectrasegWarning
from spectraseg.io.rasters import RasterStack, open_stack
from spectraseg.models.head import Head
from spectraseg.predict.tiling import WindowPlan, reflect_indices

__all__ = [
    "InputWindow",
    "ModelInfo",
    "check_band_count",
    "input_stem",
    "open_input",
    "read_windows",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

# Input columns read at once: large enough that reads are few, small enough that the input in
# memory stays small however wide the raster (20 bands x 256 rows x 2048 columns = 42 MB).
READ_BLOCK_COLUMNS = 2048
# Pixel sizes further apart than this share get a warning: the model learnt other scales.
RESOLUTION_TOLERANCE = 0.10
_PLACEHOLDER_BAND = re.compile(r"band_\d+")


@dataclass(frozen=True)
class ModelInfo:
    """What `predict_raster` reads about a model's input and output: the view of its card
    (`spectraseg.predict.load_model.info_from_card`), or a partial one for a plain callable.

    Every field may stay unset for a plain callable: the raster's bands are then used as they
    are, classes are named class_1..class_K with ids 1..K and thresholds are 0.5.
    """

    band_names: tuple[str, ...] | None = None
    """Raster bands the model takes, in its order; matched by name against the input."""
    class_names: tuple[str, ...] | None = None
    class_ids: tuple[int, ...] | None = None
    """The classes' classes.yaml ids, written into the outputs' tags and id rasters."""
    class_colours: tuple[Colour, ...] | None = None
    """The classes' colours, for the class map's colour table (grey when unset)."""
    thresholds: tuple[float, ...] | None = None
    head: Head = "sigmoid"
    resolution: tuple[float, float] | None = None
    """Training pixel size (x, y) in CRS units, to warn about (or resample) other scales."""


def input_stem(input: PathLike | Sequence[PathLike] | RasterStack) -> str:
    """The name outputs are called after: a file's stem, a folder's name, a stack's first file."""
    if isinstance(input, RasterStack):
        path = input.paths[0]
    elif isinstance(input, str | os.PathLike):
        path = Path(input)
    else:
        path = Path(next(iter(input)))
    return path.name if path.is_dir() else path.stem


def open_input(
    input: PathLike | Sequence[PathLike], info: ModelInfo, *, resample: bool = False
) -> RasterStack:
    """Open the input stack with the model's bands in the model's order.

    Bands are matched by name. A raster without band descriptions is taken in the model's
    order when its band count matches, with a warning naming the file. Anything else that does
    not match is a `BandError` naming the input, the expected and the found bands.
    """
    stack = open_stack(input)
    try:
        where = ", ".join(str(path) for path in stack.paths)
        expected = info.band_names
        if expected is not None and stack.band_names != expected:
            stack = _match_bands(stack, input, expected, where)
        if info.resolution is not None and stack.grid.is_georeferenced:
            stack = _check_resolution(stack, input, info, where, resample=resample)
    except BaseException:
        stack.close()
        raise
    return stack


def _match_bands(
    stack: RasterStack,
    input: PathLike | Sequence[PathLike],
    expected: tuple[str, ...],
    where: str,
) -> RasterStack:
    found = stack.band_names
    if all(name in found for name in expected):
        stack.close()
        return open_stack(input, band_names=expected)
    unnamed = all(_PLACEHOLDER_BAND.fullmatch(name) for name in found)
    if unnamed and len(found) == len(expected):
        warnings.warn(
            f"{where}: bands have no descriptions; taking its {len(found)} bands in the "
            f"model's order ({', '.join(expected)}).",
            SpectrasegWarning,
            stacklevel=4,
        )
        return stack
    missing = [name for name in expected if name not in found]
    problem = (
        f"{len(found)} bands without names where {len(expected)} are expected"
        if unnamed
        else f"missing {', '.join(missing)}"
    )
    raise BandError(
        f"{where}: band layout does not match the model ({problem}); expected "
        f"{', '.join(expected)}; found {', '.join(found)}. Give a raster with these bands "
        "(band descriptions name them) or a model trained on these bands."
    )


def _check_resolution(
    stack: RasterStack,
    input: PathLike | Sequence[PathLike],
    info: ModelInfo,
    where: str,
    *,
    resample: bool,
) -> RasterStack:
    assert info.resolution is not None
    found = stack.grid.resolution
    off = max(abs(f / e - 1.0) for f, e in zip(found, info.resolution, strict=True) if e > 0)
    if off <= RESOLUTION_TOLERANCE:
        return stack
    if resample:
        log.info("%s: resampling from %g to %g per px", where, found[0], info.resolution[0])
        band_names = stack.band_names
        stack.close()
        return open_stack(input, band_names=band_names, resolution=info.resolution[0])
    warnings.warn(
        f"{where}: pixel size {found[0]:g} x {found[1]:g} is {off:.0%} off the training "
        f"resolution {info.resolution[0]:g} x {info.resolution[1]:g}; predictions may suffer. "
        "Pass --resample to resample the input.",
        SpectrasegWarning,
        stacklevel=4,
    )
    return stack


@dataclass
class InputWindow:
    """One window's pixels, ready for the model, and where it goes in the extent."""

    row: int
    col: int
    image: np.ndarray  # (C, w, w) float32, NaN where invalid
    valid: np.ndarray  # (w, w) bool


def _read_block(
    stack: RasterStack, rows: np.ndarray, first_col: int, end_col: int
) -> tuple[np.ndarray, np.ndarray]:
    """Raster rows `rows` (reflected indices) of columns [first_col, end_col).

    Returns the image (C, len(rows), columns) with NaN where invalid, as the model's contract
    asks, and validity (len(rows), columns).
    """
    first, last = int(rows.min()), int(rows.max()) + 1
    image, valid = stack.read(Window(first_col, first, end_col - first_col, last - first))
    if not np.array_equal(rows, np.arange(first, last)):
        image, valid = image[:, rows - first], valid[rows - first]
    if not valid.all():
        image[:, ~valid] = np.nan
    return image, valid


def read_windows(stack: RasterStack, plan: WindowPlan) -> Iterator[InputWindow | None]:
    """Every window of the plan in row-major order; None for those with no valid pixel.

    A row of windows is read in blocks of about READ_BLOCK_COLUMNS columns, so the input held
    in memory does not grow with the raster's width. Windows are copies: a block is freed as
    soon as the windows move past it.
    """
    size = plan.window_px
    for row in plan.row_starts:
        rows = reflect_indices(np.arange(row, row + size), plan.height)
        block_first, block_end = 0, 0
        image = valid = np.empty((0, 0, 0))
        for col in plan.col_starts:
            columns = reflect_indices(np.arange(col, col + size), plan.width)
            first, end = int(columns.min()), int(columns.max()) + 1
            if first < block_first or end > block_end:
                del image, valid
                block_first = first
                block_end = max(end, min(plan.width, first + READ_BLOCK_COLUMNS))
                image, valid = _read_block(stack, rows, block_first, block_end)
            if col >= 0 and col + size <= plan.width:
                inside = slice(col - block_first, col - block_first + size)
                window_image, window_valid = image[:, :, inside].copy(), valid[:, inside]
            else:
                window_image = image[:, :, columns - block_first]
                window_valid = valid[:, columns - block_first]
            if window_valid.any():
                yield InputWindow(row, col, window_image, window_valid.copy())
            else:
                yield None


def check_band_count(stack: RasterStack, info: ModelInfo) -> None:
    """An open stack handed in by the caller must at least have the model's band count."""
    if info.band_names is not None and stack.count != len(info.band_names):
        where = ", ".join(str(path) for path in stack.paths)
        raise BandError(
            f"{where}: {stack.count} bands ({', '.join(stack.band_names)}) where the model "
            f"expects {len(info.band_names)} ({', '.join(info.band_names)})."
        )
