"""`spectraseg sample OUT_DIR`: write the built-in synthetic sample."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from spectraseg.io.lock import folder_lock
from spectraseg.sample import generate_sample

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sample",
        help="write the built-in synthetic multispectral sample",
        description="Write synthetic multispectral scenes with ground truth: images/, labels/, "
        "masks/ and classes.yaml (or the DSTL layout with --layout dstl).",
    )
    parser.add_argument("out_dir", type=Path, metavar="OUT_DIR")
    parser.add_argument("--scenes", type=int, default=4, help="number of scenes (default 4)")
    parser.add_argument(
        "--size", type=int, default=256, help="width and height in px (default 256)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--layout", choices=("standard", "dstl"), default="standard")


def run(args: argparse.Namespace) -> int:
    with folder_lock(args.out_dir):
        folder = generate_sample(
            args.out_dir,
            scenes=args.scenes,
            size=args.size,
            seed=args.seed,
            layout=args.layout,
            overwrite=args.overwrite,
        )
    log.info(
        "wrote %d scenes of %d px (%s layout) to %s", args.scenes, args.size, args.layout, folder
    )
    return 0
