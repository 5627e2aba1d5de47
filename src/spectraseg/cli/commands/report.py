"""`spectraseg report RUN_OR_EVAL_DIR... [--out FILE] [--compare RUN_DIR ...]`: one HTML page."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spectraseg.report.build import REPORT_FILE, write_report
from spectraseg.report.collect import collect_sources
from spectraseg.report.reading import DEFAULT_MAX_PIXELS


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="build a self-contained HTML report of runs and evaluations, side by side",
        description="(Re)build report.html from existing outputs: `spectraseg evaluate` "
        "folders (scores.json), training run folders (best.pt, history.csv) and `spectraseg "
        "run` folders (one column per model). Several folders are compared side by side. The "
        "page embeds its figures (readable offline); the same PNGs go to <name>_figures/.",
    )
    parser.add_argument(
        "folders", nargs="+", type=Path, metavar="RUN_OR_EVAL_DIR", help="folders to report on"
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        type=Path,
        default=[],
        metavar="RUN_DIR",
        help="more folders shown beside the first (a baseline, another architecture)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help=f"the page (default: FIRST_DIR/{REPORT_FILE})",
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="for training run folders: the data they trained on, to show validation scenes",
    )
    parser.add_argument(
        "--images",
        type=Path,
        metavar="DIR",
        help="for evaluations: the data folder holding the scenes' images (default: found "
        "beside the truth)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        metavar="N",
        help="pixels per scene figure; larger scenes are downsampled "
        f"(default: {DEFAULT_MAX_PIXELS})",
    )


def run(args: argparse.Namespace) -> int:
    folders = [*args.folders, *args.compare]
    sources = collect_sources(
        folders,
        data=args.data,
        images=[args.images] if args.images else [],
        max_pixels=args.max_pixels,
    )
    out = args.out or folders[0] / REPORT_FILE
    written = write_report(sources, out, overwrite=True)
    print(f"report: {written}")
    return 0
