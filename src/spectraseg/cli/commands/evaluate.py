"""`spectraseg evaluate --pred P --truth T --out DIR`: per-class scores against the truth."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

from rich.console import Console

from spectraseg.data.split import held_out_from_record
from spectraseg.errors import SpectrasegError
from spectraseg.evaluate.runner import evaluate_paths
from spectraseg.evaluate.tables import scores_table, write_scores
from spectraseg.io.lock import folder_lock
from spectraseg.train.run_folder import RunFolder

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score predictions against truth rasters or polygons",
        description="Per-class Jaccard, precision, recall and F1 over all pixels of all scenes, "
        "the mean Jaccard over the classes present, per-scene rows and (multi-class) a "
        "confusion matrix. DIR receives scores.json and scores.csv.",
    )
    parser.add_argument(
        "--pred",
        type=Path,
        required=True,
        metavar="P",
        help="a prediction raster or a folder of <scene>_mask/_probs.tif",
    )
    parser.add_argument(
        "--truth",
        type=Path,
        required=True,
        metavar="T",
        help="a truth raster or vector file, or a folder of them named by scene",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--run",
        type=Path,
        metavar="RUN_DIR",
        help="the training run: class names and tuned thresholds for predictions that lack them",
    )
    limit = parser.add_mutually_exclusive_group()
    limit.add_argument(
        "--area",
        type=Path,
        metavar="FILE",
        help="score only inside the polygons of this vector file (any attributes)",
    )
    limit.add_argument(
        "--split",
        type=Path,
        metavar="RUN_DIR",
        help="score only where the training run RUN_DIR held out validation (its split.json: "
        "the block of each scene, or the whole validation scenes), so that no training pixel "
        "is scored; scenes it trained on whole are left out. Implies --run RUN_DIR",
    )
    parser.add_argument(
        "--class-column",
        default="class",
        metavar="NAME",
        help="class attribute of vector truth (default: class)",
    )
    parser.add_argument(
        "--classes",
        type=Path,
        metavar="FILE",
        help="classes.yaml (default: beside the truth or in its parent)",
    )
    parser.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="data folder with the scenes' images, for the report's overlays (default: found "
        "beside the truth)",
    )
    parser.add_argument(
        "--objects",
        action="store_true",
        help="also score objects matched at IoU >= 0.5 (SpaceNet style)",
    )


def run(args: argparse.Namespace) -> int:
    with folder_lock(args.out):
        return _evaluate(args)


def _evaluate(args: argparse.Namespace) -> int:
    held_out = None
    split_source = None
    run = args.run
    if args.split is not None:
        folder = RunFolder(args.split)
        split_source = str(folder.split)
        held_out = held_out_from_record(folder.read_split(), where=split_source)
        if run is None and folder.best.is_file():
            run = folder.path
    evaluation, inputs = evaluate_paths(
        args.pred,
        args.truth,
        classes_file=args.classes,
        class_column=args.class_column,
        run=run,
        objects=args.objects,
        held_out=held_out,
        split_source=split_source,
        area=args.area,
    )
    json_path, _ = write_scores(
        args.out, evaluation, sources=inputs.as_dict(), overwrite=args.overwrite
    )
    report = _write_report(args)
    if math.isnan(evaluation.mean_jaccard):
        log.warning("no class is present in the truth or the prediction: mean Jaccard is n/a")
    if not args.quiet:
        Console(soft_wrap=True).print(scores_table(evaluation))
    mean = evaluation.mean_jaccard
    shown = "n/a" if math.isnan(mean) else f"{mean:.4f}"
    print(f"mean Jaccard: {shown} ({json_path}; report: {report})")
    return 0


def _write_report(args: argparse.Namespace) -> Path | str:
    """DIR/report.html from the scores just written and the scenes they name. The scores are
    complete without it, so a failure is a warning with the command that retries it."""
    from spectraseg.report.build import REPORT_FILE, write_report
    from spectraseg.report.collect import collect_sources

    images = [args.images] if args.images else []
    try:
        return write_report(collect_sources([args.out], images=images), args.out / REPORT_FILE)
    except (SpectrasegError, OSError) as error:
        log.warning(
            "%s: the scores are written but the report failed (%s); retry with "
            "spectraseg report %s",
            args.out,
            error,
            args.out,
        )
        return "not written"
