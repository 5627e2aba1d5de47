"""`spectraseg demo [--out DIR]`: the whole workflow on the built-in sample."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from spectraseg.cli.options import resolve_device
from spectraseg.demo import DemoSettings, run_demo
from spectraseg.io.lock import folder_lock


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole workflow on the built-in synthetic sample",
        description="Generate the built-in sample, train, predict the held-out scene, vectorize "
        "and evaluate; DIR/scores.json holds the scores. Re-running continues in DIR.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("demo"),
        metavar="DIR",
        help="output folder (default: ./demo)",
    )
    parser.add_argument(
        "--minutes", type=float, default=4.0, help="training time budget in minutes (default 4)"
    )
    parser.add_argument("--scenes", type=int, default=6, help="number of sample scenes (default 6)")
    parser.add_argument("--size", type=int, default=256, help="scene size in px (default 256)")


def run(args: argparse.Namespace) -> int:
    settings = DemoSettings(
        scenes=args.scenes, size=args.size, minutes=args.minutes, progress=not args.quiet
    )
    with folder_lock(args.out):  # one demo per folder: it is a run folder too
        run_demo(
            args.out, settings, overwrite=args.overwrite, device=resolve_device(args.accelerator)
        )
    return 0
