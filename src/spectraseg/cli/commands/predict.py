"""`spectraseg predict CHECKPOINT INPUT... --out DIR`: probability and mask rasters per input."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from spectraseg.cli.options import add_config_options, add_out_dir, resolve_device
from spectraseg.config import given_keys, load_config
from spectraseg.errors import ConfigError, SpectrasegError
from spectraseg.io.atomic import check_writable
from spectraseg.io.lock import folder_lock
from spectraseg.io.prediction_raster import class_map_paths, output_paths
from spectraseg.predict.choices import PredictRequest, request_from_config
from spectraseg.predict.cluster import connect, predict_scenes, read_input_list
from spectraseg.predict.inputs import input_stem
from spectraseg.predict.load_model import load_model
from spectraseg.predict.raster import PredictSettings, predict_raster
from spectraseg.predict.tiling import TilingSettings

log = logging.getLogger(__name__)


def _window(text: str) -> int | str:
    if text in ("auto", "patch"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither 'auto', 'patch' nor a number of pixels"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a window of {value} px is too small")
    return value


def _tta(text: str) -> int | str:
    if text == "auto":
        return text
    if text not in ("1", "2", "4", "8"):
        raise argparse.ArgumentTypeError(f"{text!r} is not auto, 1, 2, 4 or 8")
    return int(text)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict rasters with a trained model (smooth-blended windows, D4 TTA)",
        description="Predict each INPUT (a raster, a VRT or a scene folder in the checkpoint's "
        "band layout) in overlapping, smoothly blended windows streamed from disk. Writes "
        "DIR/<stem>_probs.tif (one band per class), DIR/<stem>_mask.tif and the class map "
        "DIR/<stem>_classes.tif (class ids, a colour table, a QGIS .qml style) on the input's "
        "grid, with internal overviews. "
        "Every default comes from the model card, as in `predict_raster(load_model(...))`; "
        "--config FILE applies the config's predict: section, and flags override both.",
    )
    parser.add_argument(
        "checkpoint",
        type=Path,
        metavar="CHECKPOINT",
        help="a .pt checkpoint, a run folder (its best.pt) or an ensemble YAML",
    )
    parser.add_argument("inputs", type=Path, nargs="*", metavar="INPUT", help="rasters to predict")
    parser.add_argument(
        "--inputs-from",
        type=Path,
        metavar="FILE",
        help="also predict the rasters listed in FILE, one path per line (relative to FILE)",
    )
    parser.add_argument(
        "--cluster",
        metavar="local:N|ADDRESS",
        help="predict one scene per task on Dask: local:N starts N single-threaded workers "
        "here, ADDRESS is a running scheduler (tcp://host:8786). Failed tasks are retried; "
        "scenes whose outputs are complete are skipped",
    )
    add_out_dir(parser, help_text="folder for the probability and mask rasters")
    add_config_options(parser)
    parser.add_argument(
        "--tta",
        type=_tta,
        default=None,
        metavar="auto|1|2|4|8",
        help="test-time augmentation passes over rotations/mirrors (default: auto, the fewest "
        "that scored within 0.001 Jaccard of the best on validation; 8 if not measured)",
    )
    parser.add_argument(
        "--tta-mean",
        choices=("arithmetic", "geometric"),
        default=None,
        help="how TTA passes are combined (default: arithmetic)",
    )
    parser.add_argument(
        "--overlap",
        type=float,
        default=None,
        help="share of each window its neighbour sees too (default: twice the model's measured "
        "edge margin; 0.5 for models without one)",
    )
    parser.add_argument(
        "--window",
        type=_window,
        default=None,
        metavar="auto|patch|PX",
        help="window side in pixels (default: auto, the largest valid window under the memory "
        "budget, at least the training patch; patch: the training patch)",
    )
    parser.add_argument(
        "--centre-crop",
        type=int,
        default=None,
        metavar="PX",
        help="pixels dropped from each side of each window before blending (default: 0)",
    )
    parser.add_argument(
        "--batch", type=int, metavar="N", help="windows per model call (default: by device)"
    )
    parser.add_argument(
        "--dtype",
        choices=("float32", "uint8"),
        default=None,
        help="probability raster type: float32 (NaN nodata) or uint8 (254 p, 255 nodata)",
    )
    parser.add_argument(
        "--window-function",
        choices=("spline", "hann", "flat"),
        default=None,
        help="blending weight of each window (default: spline)",
    )
    parser.add_argument(
        "--cog", action="store_true", help="write Cloud-Optimized GeoTIFFs with overviews"
    )
    parser.add_argument(
        "--no-overviews",
        dest="overviews",
        action="store_false",
        help="write no internal overviews (they cost one more read of each output)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run the network through torch.compile when the raster repays the warm-up",
    )
    parser.add_argument(
        "--resample",
        action="store_true",
        help="resample inputs whose pixel size is >10%% off the training resolution",
    )


_OPTIONS = {
    "overlap": "--overlap",
    "window": "--window",
    "tta": "--tta",
    "window_px": "--window",
    "centre_crop_px": "--centre-crop",
    "batch_size": "--batch",
}


def _from_config(args: argparse.Namespace) -> tuple[PredictSettings, dict[str, Any]]:
    """The config's predict: section, and what it asks for explicitly (window, overlap, TTA):
    those are requests; what it leaves out stays auto, decided by the model card."""
    if args.config is None and not args.overrides:
        return PredictSettings(), {}
    settings = load_config(args.config, args.overrides).predict
    request = request_from_config(settings, given_keys(args.config, args.overrides))
    return settings, request.model_dump(exclude_unset=True)


def _settings(args: argparse.Namespace) -> tuple[PredictSettings, PredictRequest]:
    """The config (if any) and the flags given, as base `PredictSettings` and the
    `PredictRequest` chosen per raster (window, overlap and TTA; per-pixel models get no TTA
    and no overlap). Flags not given leave the config's value, else the model card's."""
    settings, asked = _from_config(args)
    flags = {"window": args.window, "overlap": args.overlap, "tta": args.tta}
    asked.update({key: value for key, value in flags.items() if value is not None})
    update: dict[str, Any] = {
        key: value
        for key, value in (
            ("window_function", args.window_function),
            ("tta_mean", args.tta_mean),
            ("batch_size", args.batch),
            ("dtype", args.dtype),
        )
        if value is not None
    }
    if args.cog:
        update["cog"] = True
    if not args.overviews:
        update["overviews"] = False
    if args.compile:
        update["compile"] = True
    try:
        request = PredictRequest(**asked)
        crop = settings.tiling.centre_crop_px if args.centre_crop is None else args.centre_crop
        update["tiling"] = TilingSettings(centre_crop_px=crop)
        base = PredictSettings.model_validate({**settings.model_dump(), **update})
        if crop and request.overlap is not None:
            window = request.window if isinstance(request.window, int) else 256
            TilingSettings(window_px=window, overlap=request.overlap, centre_crop_px=crop)
        return base, request
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][-1]) if first["loc"] else ""
        # Errors across fields (a crop too wide for the overlap) have no single field.
        option = _OPTIONS.get(field, "--centre-crop/--overlap/--window")
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{option}: {message}.") from None


def _inputs(args: argparse.Namespace) -> list[Path]:
    """The INPUT arguments, then those --inputs-from lists."""
    inputs = list(args.inputs)
    if args.inputs_from is not None:
        inputs += read_input_list(args.inputs_from)
    if not inputs:
        raise ConfigError("no inputs: give rasters to predict or --inputs-from FILE.")
    return inputs


def _check_outputs(args: argparse.Namespace, inputs: list[Path]) -> list[str]:
    """Output stems for the inputs, refusing clashes and existing outputs before any work.

    On a cluster, existing outputs are not refused: complete ones are skipped, a half-written
    pair is written again (`predict/cluster.py`).
    """
    stems = [input_stem(path) for path in inputs]
    for stem in stems:
        if stems.count(stem) > 1:
            clashing = [str(p) for p, s in zip(inputs, stems, strict=True) if s == stem]
            raise ConfigError(
                f"inputs {', '.join(clashing)} would all write {stem}_probs.tif; "
                "predict them into different --out folders."
            )
        for path in (*output_paths(args.out, stem), *class_map_paths(args.out, stem)):
            check_writable(path, overwrite=args.overwrite or args.cluster is not None)
    return stems


def run(args: argparse.Namespace) -> int:
    # The lock comes before the --overwrite check: a second run into DIR stops here.
    with folder_lock(args.out):
        return _predict(args)


def _predict(args: argparse.Namespace) -> int:
    inputs = _inputs(args)
    stems = _check_outputs(args, inputs)
    if args.cluster is not None:
        return _predict_on_cluster(args, inputs, stems)
    device = resolve_device(args.accelerator)
    if device.type == "cpu":
        # Every core this process may use (the default counts physical cores only).
        torch.set_num_threads(len(os.sched_getaffinity(0)))
    base, request = _settings(args)
    model = load_model(args.checkpoint, device)
    if model.card.per_pixel and (request.tta not in ("auto", 1) or request.overlap):
        log.info("per-pixel model: predicting without TTA or overlap (they change nothing)")
    for path, stem in zip(inputs, stems, strict=True):
        outputs = predict_raster(
            model,
            path,
            args.out,
            settings=base,
            request=request,
            resample=args.resample,
            device=device,
            overwrite=args.overwrite,
            progress=not args.quiet,
            stem=stem,
        )
        log.info(
            "%s -> %s, %s, %s (%d windows, %.1f s)",
            path,
            outputs.probabilities,
            outputs.mask,
            outputs.class_map,
            outputs.windows,
            outputs.seconds,
        )
    return 0


def _predict_on_cluster(args: argparse.Namespace, inputs: list[Path], stems: list[str]) -> int:
    """Each input a task on Dask; exit 2 naming the scenes that failed, after all have run."""
    if args.cluster.startswith("local"):
        resolve_device(args.accelerator)  # --accelerator cuda without a GPU here: refused now
    base, request = _settings(args)
    load_model(args.checkpoint)  # a bad checkpoint is one line now, not one per task
    with connect(args.cluster) as client:
        results = predict_scenes(
            client,
            args.checkpoint,
            inputs,
            args.out,
            stems=stems,
            settings=base,
            request=request,
            accelerator=args.accelerator,
            resample=args.resample,
            overwrite=args.overwrite,
        )
    failed = [result for result in results if result.status == "failed"]
    if failed:
        first = failed[0]
        raise SpectrasegError(
            f"{len(failed)} of {len(results)} scenes failed, first {first.input}: "
            f"{first.message} (the others are complete; rerun to retry only the failed ones)."
        )
    return 0
