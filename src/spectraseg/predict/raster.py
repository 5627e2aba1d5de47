"""`predict_raster`: a model over a raster of any size, streamed from disk in bounded memory.

The raster is cut into overlapping windows (`tiling.py`); windows are read a row of windows at
a time (`inputs.py`), batched, predicted with test-time augmentation (`tta.py`) and blended into
a band of output rows (`blending.py`). Rows no later window reaches are finished: they are
written out (`outputs.py`; the format is `io/prediction_raster.py`) and their memory reused.
Memory therefore grows with the raster's width and the window, never with its height; a
100 000-row scene costs what 1 000 rows cost.

The tests hold the same algorithm on arrays in memory, written the plain way
(`predict_array_reference` in `tests/predict/conftest.py`), and check the streaming against it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
import rasterio
import torch

from spectraseg.data.augment import tta_transforms
from spectraseg.io.atomic import check_free_space, check_writable, write_text_atomic
from spectraseg.io.prediction_raster import (
    class_map_paths,
    class_map_writer,
    mask_writer,
    output_paths,
    probabilities_writer,
)
from spectraseg.io.qgis_style import class_map_style
from spectraseg.io.rasters import RasterStack, gdal_cache_bytes
from spectraseg.predict.blending import RowBandAccumulator, window_2d
from spectraseg.predict.choices import (
    Choice,
    ModelFacts,
    PredictRequest,
    choose_settings,
)
from spectraseg.predict.compiled import compile_model, worth_compiling
from spectraseg.predict.inputs import (
    InputWindow,
    ModelInfo,
    check_band_count,
    input_stem,
    open_input,
    read_windows,
)
from spectraseg.predict.load_model import LoadedModel
from spectraseg.predict.memory import (
    activation_bytes_per_pixel,
    check_buffers_fit,
    memory_budget_bytes,
    prediction_buffer_bytes,
    window_bytes_per_pixel,
)
from spectraseg.predict.outputs import BlockRowSink, PredictionOutputs
from spectraseg.predict.settings import CPU_BATCH_PIXELS, GPU_FIRST_BATCH, PredictSettings
from spectraseg.predict.tiling import WindowPlan, plan_windows
from spectraseg.predict.tta import Model, predict_with_tta
from spectraseg.progress import progress_bar
from spectraseg.train.precision import resolve_precision

__all__ = [
    "PredictSettings",
    "predict_raster",
]

log = logging.getLogger(__name__)

CompileState = Literal["undecided", "warming", "done"]

PathLike = str | os.PathLike[str]

# GDAL's block cache defaults to 5% of RAM and would fill with the tiles read and written;
# prediction touches each tile twice at most, so a small cache bounds memory at no cost.
GDAL_CACHE_MB = 64


# --- prediction ----------------------------------------------------------------------------


class _BatchPredictor:
    """The model under test-time augmentation, on one device, batch by batch.

    On a GPU that runs out of memory the batch is split in two and the batch size halved for
    the rest of the raster, so the first batch size may be optimistic.
    """

    def __init__(
        self,
        model: Model,
        settings: PredictSettings,
        device: torch.device,
        *,
        num_windows: int = 0,
    ) -> None:
        self.model = model
        self.settings = settings
        self.device = device
        self.transforms = tta_transforms(settings.tta)
        self.precision = resolve_precision(settings.precision, device, purpose="predict")
        # With `settings.compile`: the first batch runs eagerly and is timed to decide whether
        # the rest repays compiling; the second, compiled call's extra time is the warm-up.
        self.windows_left = num_windows
        self.compile_state: CompileState = "undecided" if settings.compile else "done"
        self.eager_seconds_per_window = 0.0
        if settings.batch_size is not None:
            self.batch_size = settings.batch_size
        elif device.type == "cuda":
            self.batch_size = GPU_FIRST_BATCH
        else:
            window = settings.tiling.window_px
            self.batch_size = max(1, CPU_BATCH_PIXELS // (window * window))

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        """(N, C, w, w) float32 -> (N, K, w, w) float32 probabilities on the CPU."""
        count = len(images)
        self.windows_left -= count
        if self.compile_state != "done" and count < self.batch_size:
            # A compiled network is specialised to one batch shape: fill the batch with zeros
            # rather than compile again for a short last batch.
            filler = np.zeros((self.batch_size - count, *images.shape[1:]), dtype=images.dtype)
            images = np.concatenate([images, filler])
        batch = torch.from_numpy(images).to(self.device)
        started = time.perf_counter()
        probs = self._predict(batch)[:count].to("cpu", torch.float32)
        seconds = time.perf_counter() - started
        if self.compile_state == "undecided":
            self._decide_compile(seconds / len(images))
        elif self.compile_state == "warming":
            warmup = seconds - self.eager_seconds_per_window * len(images)
            log.info("compiled the network: warm-up %.1f s", warmup)
            self.compile_state = "done"
        return probs

    def _decide_compile(self, seconds_per_window: float) -> None:
        self.eager_seconds_per_window = seconds_per_window
        pays, why = worth_compiling(seconds_per_window * max(self.windows_left, 0))
        if pays:
            log.info("compiling the network (%s)", why)
            self.model = compile_model(self.model)
            self.compile_state = "warming"
        else:
            log.info("not compiling the network: %s", why)
            self.compile_state = "done"

    def _predict(self, batch: torch.Tensor) -> torch.Tensor:
        try:
            with torch.inference_mode(), self.precision.autocast():
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


def _batches(
    windows: Iterator[InputWindow | None], predictor: _BatchPredictor
) -> Iterator[tuple[list[InputWindow], int]]:
    """Windows grouped for the model, with how many plan windows each group stands for."""
    batch: list[InputWindow] = []
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


def _choose(
    model: Model,
    base: PredictSettings,
    request: PredictRequest,
    facts: ModelFacts | None,
    channels: int,
    height: int,
    width: int,
    device: torch.device,
) -> Choice:
    """`choose_settings` for this raster, measuring the model's memory when the window is auto."""
    facts = facts or ModelFacts(patch_px=base.tiling.window_px)
    bytes_per_pixel = 0.0
    if request.window == "auto" and not facts.per_pixel:
        probe = max(facts.size_multiple, 32 // facts.size_multiple * facts.size_multiple)
        activations = activation_bytes_per_pixel(model, channels, probe, device)
        bytes_per_pixel = window_bytes_per_pixel(activations, channels)
    return choose_settings(
        base,
        request,
        facts,
        height=height,
        width=width,
        bytes_per_pixel=bytes_per_pixel,
        budget_bytes=memory_budget_bytes(device),
        gpu=device.type == "cuda",
    )


def predict_raster(
    model: LoadedModel | Model,
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
    request: PredictRequest | None = None,
    facts: ModelFacts | None = None,
) -> PredictionOutputs:
    """Predict a raster window by window: `<stem>_probs.tif`, `<stem>_mask.tif` and the class
    map `<stem>_classes.tif` (with its QGIS style `<stem>_classes.qml`), overviews inside.

    With a `LoadedModel` (`load_model(path)`), every default comes from its card: bands,
    classes and their ids, thresholds and head (`info`), and window, overlap and TTA chosen
    for this raster from the card's patch, measured edge margin and TTA scores (`request`
    defaults to all-auto; per-pixel models get no TTA and no overlap). `spectraseg predict`
    with no flags calls exactly this.

    Args:
        model: a `LoadedModel`, or any callable from a (N, C, h, w) float32 tensor of raw bands
            (invalid pixels NaN) to (N, K, h, w) probabilities, e.g.
            `build_predictor(checkpoint, device)` or `lambda x: x[:, :1]`. Called under
            `torch.inference_mode()`.
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
        request: window, overlap and TTA to choose for this raster from `facts` (the model
            card's patch, size multiple, edge margin and TTA scores) and the memory budget;
            they replace `settings`' tiling, TTA and batch (`choices.py`). Default: `settings`
            as they are.

    Memory: about (K + 1) x window x width x 4 bytes for the blending band, K x 256 x width x 4
    for the write buffer, C x window x 2048 x 4 for the input being read, and the model's
    batch; not the raster's height.
    """
    if isinstance(model, LoadedModel):
        info = info or model.info
        facts = facts or model.facts
        request = request or PredictRequest()
        model = model.predictor
    settings = settings or PredictSettings()
    info = info or ModelInfo()
    stem = stem or input_stem(input)
    probs_path, mask_path = output_paths(output, stem)
    class_map_path, style_path = class_map_paths(output, stem)
    check_writable(probs_path, overwrite=overwrite)
    if settings.write_mask:
        for path in (mask_path, class_map_path, style_path):
            check_writable(path, overwrite=overwrite)
    started = time.perf_counter()
    with contextlib.ExitStack() as cleanup:
        if "GDAL_CACHEMAX" not in os.environ:
            cleanup.enter_context(rasterio.Env(GDAL_CACHEMAX=gdal_cache_bytes(GDAL_CACHE_MB)))
        if isinstance(input, RasterStack):
            stack = input
        else:
            stack = open_input(input, info, resample=resample)
            cleanup.callback(stack.close)
        check_band_count(stack, info)
        target = torch.device(device) if device is not None else torch.device("cpu")
        height, width = stack.grid.height, stack.grid.width
        if request is not None:
            choice = _choose(model, settings, request, facts, stack.count, height, width, target)
            settings = choice.settings
        plan = plan_windows(height, width, settings.tiling)
        if request is None:
            passes = settings.tta * plan.pixel_passes / (height * width)
            choice = Choice(settings, passes, "settings as given")
        log.info("%s: %s", stem, choice.describe())
        predictor = _BatchPredictor(model, settings, target, num_windows=plan.num_windows)
        class_names = info.class_names or tuple(
            f"class_{k + 1}"
            for k in range(_count_classes(model, stack.count, min(plan.window_px, 64), target))
        )
        check_buffers_fit(
            prediction_buffer_bytes(
                window_px=plan.window_px,
                batch_size=min(predictor.batch_size, plan.num_windows),
                channels=stack.count,
                num_classes=len(class_names),
                extent_width=plan.extent_width,
            ),
            where=str(stack.paths[0]) if stack.paths else stem,
            settings=f"windows of {plan.window_px} px in batches of {predictor.batch_size}",
        )
        # Deflate shrinks probabilities about 2x and 0/1 masks 10x or more: a lower bound.
        pixels = len(class_names) * height * width
        itemsize = 4 if settings.dtype == "float32" else 1
        check_free_space(
            probs_path.parent,
            pixels * itemsize // 2 + (pixels // 10 if settings.write_mask else 0),
            what=f"the outputs of {stem}",
        )
        thresholds = info.thresholds or (0.5,) * len(class_names)
        class_ids = info.class_ids if info.class_names else None
        colours = info.class_colours if info.class_names else None
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
        sink = BlockRowSink(
            cleanup.enter_context(
                probabilities_writer(
                    probs_path,
                    stack.grid,
                    class_names,
                    thresholds,
                    head=info.head,
                    dtype=settings.dtype,
                    cog=settings.cog,
                    overwrite=overwrite,
                    overviews=settings.overviews,
                    class_ids=class_ids,
                    class_colours=colours,
                )
            ),
            cleanup.enter_context(
                mask_writer(
                    mask_path,
                    stack.grid,
                    class_names,
                    thresholds,
                    head=info.head,
                    cog=settings.cog,
                    overwrite=overwrite,
                    overviews=settings.overviews,
                    class_ids=class_ids,
                    class_colours=colours,
                )
            )
            if settings.write_mask
            else None,
            width=plan.width,
            num_classes=len(class_names),
            dtype=settings.dtype,
            thresholds=thresholds,
            head=info.head,
            class_map=cleanup.enter_context(
                class_map_writer(
                    class_map_path,
                    stack.grid,
                    class_names,
                    thresholds,
                    head=info.head,
                    cog=settings.cog,
                    overwrite=overwrite,
                    overviews=settings.overviews,
                    class_ids=class_ids,
                    colours=colours,
                )
            )
            if settings.write_mask
            else None,
            class_ids=class_ids,
        )
        with progress_bar(plan.num_windows, stem, unit="windows", enabled=progress) as advance:
            _run(stack, plan, predictor, settings, len(class_names), sink, advance)
        sink.flush()
    if settings.write_mask:
        ids = class_ids or tuple(range(1, len(class_names) + 1))
        style = class_map_style(class_names, ids, colours or ((128, 128, 128),) * len(ids))
        write_text_atomic(style_path, style, overwrite=overwrite)
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
        passes_per_pixel=choice.passes_per_pixel,
        class_map=class_map_path if settings.write_mask else None,
    )


def _run(
    stack: RasterStack,
    plan: WindowPlan,
    predictor: _BatchPredictor,
    settings: PredictSettings,
    num_classes: int,
    sink: BlockRowSink,
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

    for batch, seen in _batches(read_windows(stack, plan), predictor):
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
