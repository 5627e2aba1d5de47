"""`predict_raster`: a model over a raster of any size, streamed from disk in bounded memory.

The raster is cut into overlapping windows (`tiling.py`); windows are read a row of windows at
a time, batched, predicted with test-time augmentation (`tta.py`) and blended into a band of
output rows (`blending.py`). Rows no later window reaches are finished: they are written out
and their memory reused. Memory therefore grows with the raster's width and the window, never
with its height; a 100 000-row scene costs what 1 000 rows cost.

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

`predict_array_reference` is the same algorithm on arrays in memory, written the plain way,
so tests can check the streaming against it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
import torch
from pydantic import Field
from rasterio.windows import Window

from spectraseg.data.augment import tta_transforms
from spectraseg.errors import BandError, SpectrasegWarning
from spectraseg.io.atomic import check_writable
from spectraseg.io.geotiff import RasterWriter
from spectraseg.io.rasters import RasterStack, open_stack
from spectraseg.predict.blending import RowBandAccumulator, WindowFunction, window_2d
from spectraseg.predict.tiling import TilingSettings, WindowPlan, plan_windows, reflect_indices
from spectraseg.predict.tta import Model, TTAMean, predict_with_tta
from spectraseg.settings import Settings
from spectraseg.train.metrics import binarize

__all__ = [
    "ModelInfo",
    "PredictSettings",
    "PredictionOutputs",
    "output_paths",
    "predict_array_reference",
    "predict_raster",
]

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
Head = Literal["sigmoid", "softmax"]

MASK_NODATA = 255
PROBABILITY_SCALE = 254  # uint8 probabilities: round(254 p), so that 255 stays free for nodata
# Rows are handed to the writer in blocks of the GeoTIFF's tile height, so that every tile is
# compressed once, when complete, instead of being flushed half-written and rewritten.
WRITE_BLOCK_ROWS = 256
# Input columns read at once: large enough that reads are few, small enough that the input in
# memory stays small however wide the raster (20 bands x 256 rows x 2048 columns = 42 MB).
READ_BLOCK_COLUMNS = 2048
# GDAL's block cache defaults to 5% of RAM and would fill with the tiles read and written;
# prediction touches each tile twice at most, so a small cache bounds memory at no cost.
GDAL_CACHE_MB = 64
# Pixel sizes further apart than this share get a warning: the model learnt other scales.
RESOLUTION_TOLERANCE = 0.10
# Pixels per CPU batch (two 256 px windows), scaled for other window sizes. Both cores stay
# busy with two windows already; with more, a reference-size U-Net's feature maps outgrow
# malloc's reuse threshold (32 MB) and every pass pays page faults: batches of 4 ran 15% slower.
CPU_BATCH_PIXELS = 2 * 256 * 256
GPU_FIRST_BATCH = 32
_PLACEHOLDER_BAND = re.compile(r"band_\d+")


class PredictSettings(Settings):
    """How `predict_raster` predicts and writes. In YAML: the `predict:` section."""

    tiling: TilingSettings = TilingSettings()
    window_function: WindowFunction = "spline"
    """Blending weight of each window: spline (smooth, the default), hann, or flat."""
    tta: Literal[1, 2, 4, 8] = 8
    """Test-time augmentation passes over the D4 group: 1 = none, 8 = every rotation/mirror."""
    tta_mean: TTAMean = "arithmetic"
    batch_size: int | None = Field(default=None, ge=1)
    """Windows per model call; None picks one for the device (halved on GPU out-of-memory)."""
    dtype: Literal["float32", "uint8"] = "float32"
    """Probability raster type: float32 (NaN nodata) or uint8 (254 x p, 255 nodata), 4x smaller."""
    cog: bool = False
    """Write Cloud-Optimized GeoTIFFs with overviews (costs one extra copy at the end)."""
    write_mask: bool = True
    channels_last: bool = True
    """Hand the model channels-last batches: the reference U-Net ran 1.2x to 1.45x faster on CPU."""


@dataclass(frozen=True)
class ModelInfo:
    """What the model expects and produces, as its checkpoint records it.

    Every field may stay unset for a plain callable: the raster's bands are then used as they
    are, classes are named class_1..class_K and thresholds are 0.5.
    """

    band_names: tuple[str, ...] | None = None
    """Raster bands the model takes, in its order; matched by name against the input."""
    class_names: tuple[str, ...] | None = None
    thresholds: tuple[float, ...] | None = None
    head: Head = "sigmoid"
    resolution: tuple[float, float] | None = None
    """Training pixel size (x, y) in CRS units, to warn about (or resample) other scales."""


@dataclass(frozen=True)
class PredictionOutputs:
    """The files one `predict_raster` call wrote, and how long it took."""

    probabilities: Path
    mask: Path | None
    windows: int
    seconds: float


def output_paths(output: PathLike, stem: str) -> tuple[Path, Path]:
    """(probabilities, mask) paths for input `stem` in folder `output`."""
    folder = Path(output)
    return folder / f"{stem}_probs.tif", folder / f"{stem}_mask.tif"


def input_stem(input: PathLike | Sequence[PathLike] | RasterStack) -> str:
    """The name outputs are called after: a file's stem, a folder's name, a stack's first file."""
    if isinstance(input, RasterStack):
        path = input.paths[0]
    elif isinstance(input, str | os.PathLike):
        path = Path(input)
    else:
        path = Path(next(iter(input)))
    return path.name if path.is_dir() else path.stem


# --- input ---------------------------------------------------------------------------------


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
class _Window:
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


def _windows(stack: RasterStack, plan: WindowPlan) -> Iterator[_Window | None]:
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
                yield _Window(row, col, window_image, window_valid.copy())
            else:
                yield None


# --- output --------------------------------------------------------------------------------


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


class _BlockRowSink:
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


# --- prediction ----------------------------------------------------------------------------


class _BatchPredictor:
    """The model under test-time augmentation, on one device, batch by batch.

    On a GPU that runs out of memory the batch is split in two and the batch size halved for
    the rest of the raster, so the first batch size may be optimistic.
    """

    def __init__(self, model: Model, settings: PredictSettings, device: torch.device) -> None:
        self.model = model
        self.settings = settings
        self.device = device
        self.transforms = tta_transforms(settings.tta)
        if settings.batch_size is not None:
            self.batch_size = settings.batch_size
        elif device.type == "cuda":
            self.batch_size = GPU_FIRST_BATCH
        else:
            window = settings.tiling.window_px
            self.batch_size = max(1, CPU_BATCH_PIXELS // (window * window))

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        """(N, C, w, w) float32 -> (N, K, w, w) float32 probabilities on the CPU."""
        batch = torch.from_numpy(images).to(self.device)
        return self._predict(batch).to("cpu", torch.float32)

    def _predict(self, batch: torch.Tensor) -> torch.Tensor:
        try:
            with torch.inference_mode():
                return predict_with_tta(
                    self.model,
                    batch,
                    self.transforms,
                    mean=self.settings.tta_mean,
                    channels_last=self.settings.channels_last,
                )
        except torch.OutOfMemoryError:
            if self.device.type != "cuda" or batch.shape[0] == 1:
                raise
            torch.cuda.empty_cache()
            half = batch.shape[0] // 2
            self.batch_size = max(1, min(self.batch_size, half))
            log.info("out of GPU memory: batches of %d windows from now on", self.batch_size)
            return torch.cat([self._predict(batch[:half]), self._predict(batch[half:])])


def _count_classes(model: Model, channels: int, window_px: int, device: torch.device) -> int:
    """The model's number of classes, from one plain prediction of a blank window."""
    blank = torch.zeros((1, channels, window_px, window_px), device=device)
    with torch.inference_mode():
        return int(model(blank).shape[1])


def _progress_bar(
    total: int, description: str, enabled: bool
) -> contextlib.AbstractContextManager[Callable[[int], None]]:
    """A context giving `advance(windows)`; a rich bar with windows/s and ETA when enabled."""
    if not enabled:
        return contextlib.nullcontext(lambda _: None)
    return _rich_progress(total, description)


@contextlib.contextmanager
def _rich_progress(total: int, description: str) -> Iterator[Callable[[int], None]]:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class SpeedColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:.2f} windows/s" if speed else "? windows/s")

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        SpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda windows: bar.advance(task, windows)


def _batches(
    windows: Iterator[_Window | None], predictor: _BatchPredictor
) -> Iterator[tuple[list[_Window], int]]:
    """Windows grouped for the model, with how many plan windows each group stands for."""
    batch: list[_Window] = []
    seen = 0
    for window in windows:
        seen += 1
        if window is not None:
            batch.append(window)
        if len(batch) >= predictor.batch_size:
            yield batch, seen
            batch, seen = [], 0
    if batch or seen:
        yield batch, seen


def predict_raster(
    model: Model,
    input: PathLike | Sequence[PathLike] | RasterStack,
    output: PathLike,
    *,
    settings: PredictSettings | None = None,
    info: ModelInfo | None = None,
    resample: bool = False,
    device: torch.device | str | None = None,
    overwrite: bool = False,
    progress: bool = False,
    stem: str | None = None,
) -> PredictionOutputs:
    """Predict a raster window by window and write `<stem>_probs.tif` and `<stem>_mask.tif`.

    Args:
        model: any callable from a (N, C, h, w) float32 tensor of raw bands (invalid pixels
            NaN) to (N, K, h, w) probabilities, e.g. `build_predictor(checkpoint, device)` or
            `lambda x: x[:, :1]`. Called under `torch.inference_mode()`.
        input: a raster file, a VRT, a scene folder, a list of files stacked as bands, or an
            open `RasterStack` (used as it is: no band matching).
        output: the folder for the outputs; created if missing.
        info: the bands, classes, thresholds, head and resolution the model was trained with.
        resample: resample an input whose pixel size is more than 10% off `info.resolution`
            instead of warning (the outputs are then on the resampled grid).
        device: where the model runs (default: CPU); batches are moved there.
        overwrite: replace existing outputs; otherwise they are an `OutputExistsError`,
            raised before any work.
        progress: show a progress bar with windows/s and ETA on stderr.
        stem: output name prefix (default: the input's file stem or folder name).

    Memory: about (K + 1) x window x width x 4 bytes for the blending band, K x 256 x width x 4
    for the write buffer, C x window x 2048 x 4 for the input being read, and the model's
    batch; not the raster's height.
    """
    settings = settings or PredictSettings()
    info = info or ModelInfo()
    stem = stem or input_stem(input)
    probs_path, mask_path = output_paths(output, stem)
    check_writable(probs_path, overwrite=overwrite)
    if settings.write_mask:
        check_writable(mask_path, overwrite=overwrite)
    started = time.perf_counter()
    with contextlib.ExitStack() as cleanup:
        if "GDAL_CACHEMAX" not in os.environ:
            cleanup.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB))
        if isinstance(input, RasterStack):
            stack = input
        else:
            stack = open_input(input, info, resample=resample)
            cleanup.callback(stack.close)
        _check_band_count(stack, info)
        predictor = _BatchPredictor(
            model, settings, torch.device(device) if device is not None else torch.device("cpu")
        )
        plan = plan_windows(stack.grid.height, stack.grid.width, settings.tiling)
        class_names = info.class_names or tuple(
            f"class_{k + 1}"
            for k in range(_count_classes(model, stack.count, plan.window_px, predictor.device))
        )
        thresholds = info.thresholds or (0.5,) * len(class_names)
        if len(thresholds) != len(class_names):
            raise ValueError(f"{len(thresholds)} thresholds for {len(class_names)} classes")
        log.info(
            "%s: %s; %d windows of %d px, TTA %d, batches of %d",
            stem,
            stack.describe(),
            plan.num_windows,
            plan.window_px,
            settings.tta,
            predictor.batch_size,
        )
        sink = _BlockRowSink(
            cleanup.enter_context(
                _probabilities_writer(
                    probs_path, stack, class_names, thresholds, info, settings, overwrite=overwrite
                )
            ),
            cleanup.enter_context(
                _mask_writer(
                    mask_path, stack, class_names, thresholds, info, settings, overwrite=overwrite
                )
            )
            if settings.write_mask
            else None,
            width=plan.width,
            num_classes=len(class_names),
            dtype=settings.dtype,
            thresholds=thresholds,
            head=info.head,
        )
        with _progress_bar(plan.num_windows, stem, progress) as advance:
            _run(stack, plan, predictor, settings, len(class_names), sink, advance)
        sink.flush()
    seconds = time.perf_counter() - started
    log.info(
        "%s: %d windows in %.1f s (%.2f windows/s)",
        stem,
        plan.num_windows,
        seconds,
        plan.num_windows / max(seconds, 1e-9),
    )
    return PredictionOutputs(
        probabilities=probs_path,
        mask=mask_path if settings.write_mask else None,
        windows=plan.num_windows,
        seconds=seconds,
    )


def _check_band_count(stack: RasterStack, info: ModelInfo) -> None:
    """An open stack handed in by the caller must at least have the model's band count."""
    if info.band_names is not None and stack.count != len(info.band_names):
        where = ", ".join(str(path) for path in stack.paths)
        raise BandError(
            f"{where}: {stack.count} bands ({', '.join(stack.band_names)}) where the model "
            f"expects {len(info.band_names)} ({', '.join(info.band_names)})."
        )


def _probabilities_writer(
    path: Path,
    stack: RasterStack,
    class_names: Sequence[str],
    thresholds: Sequence[float],
    info: ModelInfo,
    settings: PredictSettings,
    *,
    overwrite: bool,
) -> RasterWriter:
    tags = _output_tags("probabilities", class_names, thresholds, info.head)
    if settings.dtype == "uint8":
        tags["SPECTRASEG_PROBABILITY_SCALE"] = str(PROBABILITY_SCALE)
    return RasterWriter(
        path,
        stack.grid,
        len(class_names),
        settings.dtype,
        band_names=class_names,
        nodata=float("nan") if settings.dtype == "float32" else MASK_NODATA,
        tags=tags,
        overwrite=overwrite,
        cog=settings.cog,
    )


def _mask_writer(
    path: Path,
    stack: RasterStack,
    class_names: Sequence[str],
    thresholds: Sequence[float],
    info: ModelInfo,
    settings: PredictSettings,
    *,
    overwrite: bool,
) -> RasterWriter:
    multi_label = info.head == "sigmoid"
    return RasterWriter(
        path,
        stack.grid,
        len(class_names) if multi_label else 1,
        "uint8",
        band_names=class_names if multi_label else ("class",),
        nodata=MASK_NODATA,
        tags=_output_tags("mask", class_names, thresholds, info.head),
        overwrite=overwrite,
        cog=settings.cog,
        overview_resampling="nearest",
    )


def _run(
    stack: RasterStack,
    plan: WindowPlan,
    predictor: _BatchPredictor,
    settings: PredictSettings,
    num_classes: int,
    sink: _BlockRowSink,
    advance: Callable[[int], None],
) -> None:
    """The streaming loop: read, predict, blend, and hand finished rows to `sink`."""
    size, margin = plan.window_px, plan.margin_px
    weights = torch.from_numpy(window_2d(settings.window_function, size, crop_px=plan.crop_px))
    accumulator = RowBandAccumulator(num_classes, plan.extent_width, band_height=size)

    def release_until(extent_row: int) -> None:
        # Rows above `extent_row` get no more windows: blend them and write their raster part.
        while accumulator.top < extent_row:
            top = accumulator.top
            rows = accumulator.release(min(extent_row, top + size))
            first, last = max(top - margin, 0), min(accumulator.top - margin, plan.height)
            if last > first:
                offset = first - (top - margin)
                sink.add(rows[:, offset : offset + last - first, margin : margin + plan.width])

    for batch, seen in _batches(_windows(stack, plan), predictor):
        if batch:
            probs = predictor(np.stack([window.image for window in batch]))
            expected = (len(batch), num_classes, size, size)
            if tuple(probs.shape) != expected:
                raise ValueError(
                    f"the model returned {tuple(probs.shape)} for windows {expected[:1]} + "
                    f"{(stack.count, size, size)}; expected {expected}"
                )
            for window, window_probs in zip(batch, probs, strict=True):
                release_until(window.row + margin)
                window_weights = (
                    weights if window.valid.all() else weights * torch.from_numpy(window.valid)
                )
                accumulator.add(
                    window_probs, window_weights, window.row + margin, window.col + margin
                )
        advance(seen)
    release_until(plan.extent_height)


# --- reference -----------------------------------------------------------------------------


def predict_array_reference(
    model: Model,
    image: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    settings: PredictSettings | None = None,
) -> np.ndarray:
    """The algorithm of `predict_raster` on an array in memory, written the plain way.

    Pads the whole image by reflection, predicts each window alone, and accumulates Σw·p and
    Σw over the whole padded extent in float64. For tests: memory is many times the image.

    Args:
        image: (C, H, W) float32 raw bands.
        valid: (H, W) bool; invalid pixels reach the model as NaN and come out as NaN.

    Returns:
        (K, H, W) float32 probabilities, NaN where invalid.
    """
    settings = settings or PredictSettings()
    _, height, width = image.shape
    valid = np.ones((height, width), dtype=bool) if valid is None else valid
    plan = plan_windows(height, width, settings.tiling)
    size, margin = plan.window_px, plan.margin_px
    rows = reflect_indices(np.arange(-margin, plan.extent_height - margin), height)
    cols = reflect_indices(np.arange(-margin, plan.extent_width - margin), width)
    padded = np.where(valid, image, np.nan).astype(np.float32)[:, rows][:, :, cols]
    padded_valid = valid[rows][:, cols]
    weights = window_2d(settings.window_function, size, crop_px=plan.crop_px).astype(np.float64)
    transforms = tta_transforms(settings.tta)
    weighted_sum: np.ndarray | None = None
    weight_sum = np.zeros((plan.extent_height, plan.extent_width))
    for window in plan.windows():
        r, c = int(window.row_off) + margin, int(window.col_off) + margin
        window_valid = padded_valid[r : r + size, c : c + size]
        if not window_valid.any():
            continue
        batch = torch.from_numpy(padded[None, :, r : r + size, c : c + size].copy())
        with torch.inference_mode():
            probs = (
                predict_with_tta(
                    model,
                    batch,
                    transforms,
                    mean=settings.tta_mean,
                    channels_last=settings.channels_last,
                )[0]
                .double()
                .numpy()
            )
        if weighted_sum is None:
            weighted_sum = np.zeros((probs.shape[0], *weight_sum.shape))
        usable = window_valid & np.isfinite(probs).all(axis=0)
        weighted_sum[:, r : r + size, c : c + size] += weights * usable * np.nan_to_num(probs)
        weight_sum[r : r + size, c : c + size] += weights * usable
    if weighted_sum is None:
        raise ValueError("the image has no valid pixel")
    with np.errstate(invalid="ignore", divide="ignore"):
        blended = weighted_sum / weight_sum
    blended[:, weight_sum == 0] = np.nan
    inside = (slice(None), slice(margin, margin + height), slice(margin, margin + width))
    return blended[inside].astype(np.float32)
