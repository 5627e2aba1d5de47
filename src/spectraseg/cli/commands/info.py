"""`spectraseg info INPUT...`: describe a band stack and check that every pixel reads."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from spectraseg.io.coregister import estimate_stack_shifts
from spectraseg.io.inspect import summarize_stack


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "info",
        help="describe a raster or a stack of rasters and read it through",
        description="Open one raster, several rasters or a folder as one band stack on one grid, "
        "read it window by window and print its grid, band names and per-band statistics.",
    )
    parser.add_argument("inputs", type=Path, nargs="+", metavar="INPUT")
    parser.add_argument("--sensor", help="sensor preset naming and scaling the bands")
    parser.add_argument("--resolution", type=float, help="pixel size of the stacked grid")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--coregister",
        action="store_true",
        help="estimate each file's sub-pixel shift against the reference file (phase correlation)",
    )


def run(args: argparse.Namespace) -> int:
    summary = summarize_stack(args.inputs, sensor=args.sensor, resolution=args.resolution)
    if args.coregister:
        shifts = estimate_stack_shifts(args.inputs)
        summary["shifts_px"] = {name: {"rows": dy, "cols": dx} for name, (dy, dx) in shifts.items()}
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"grid: {summary['grid']}")
    if summary["all_nodata"]:
        print(
            "valid pixels: none: every pixel is nodata (the nodata value, a mask or alpha band, "
            "NaN), so there are no band statistics"
        )
        print("bands: " + ", ".join(band["name"] for band in summary["bands"]))
        return 0
    print(f"valid pixels: {summary['valid_fraction']:.2%}")
    print(f"{'band':<16}{'min':>10}{'mean':>10}{'max':>10}")
    for band in summary["bands"]:
        print(f"{band['name']:<16}{band['min']:>10.4g}{band['mean']:>10.4g}{band['max']:>10.4g}")
    for name, shift in summary.get("shifts_px", {}).items():
        print(f"shift of {name}: {shift['rows']:+.2f} rows, {shift['cols']:+.2f} columns")
    return 0
