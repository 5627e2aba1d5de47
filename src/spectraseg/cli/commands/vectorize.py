"""`spectraseg vectorize PROBS_OR_MASK --out FILE`: prediction raster -> clean polygons."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from spectraseg.cli.options import add_config_options
from spectraseg.config import load_config
from spectraseg.errors import ConfigError
from spectraseg.io.classes_file import load_classes
from spectraseg.io.yaml_file import read_yaml
from spectraseg.postprocess.chain import PostprocessSettings
from spectraseg.postprocess.rules import parse_rules
from spectraseg.postprocess.vectorize import vectorize

TOLERANCE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(px|m)?\s*$")


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "vectorize",
        help="turn a probability or mask raster into polygons (GeoJSON, GPKG, SHP, DSTL CSV)",
        description="Threshold, clean and resolve class conflicts, then write valid polygons "
        "with class name, id, area and mean probability. The format follows --out's extension: "
        ".geojson (WGS84), .gpkg, .shp, or .csv (DSTL submission, needs --grid-sizes).",
    )
    parser.add_argument(
        "raster",
        type=Path,
        metavar="PROBS_OR_MASK",
        help="a <stem>_probs.tif or <stem>_mask.tif written by predict",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="output file")
    parser.add_argument(
        "--thresholds",
        metavar="FILE|auto",
        help="per-class thresholds (YAML/JSON name: value); default auto, the "
        "tuned ones stored in the raster",
    )
    parser.add_argument(
        "--rules",
        type=Path,
        metavar="FILE",
        help="YAML list of class conflict rules (see docs/postprocess.md)",
    )
    parser.add_argument(
        "--simplify",
        metavar="TOL",
        help="simplification tolerance: pixels (0.5, 0.5px) or metres (2m)",
    )
    parser.add_argument(
        "--classes",
        type=Path,
        metavar="FILE",
        help="classes.yaml: names for rasters without them, and the class ids",
    )
    parser.add_argument(
        "--grid-sizes",
        type=Path,
        metavar="CSV",
        help="DSTL grid-sizes CSV (ImageId, Xmax, Ymin), for a .csv output",
    )
    parser.add_argument(
        "--image-id",
        metavar="ID",
        help="DSTL ImageId (default: the raster name without _probs/_mask)",
    )
    add_config_options(parser)


def parse_tolerance(text: str) -> dict[str, float]:
    """`0.5`, `0.5px` or `2m` as the polygon settings it sets.

    Example:
        >>> parse_tolerance("2m"), parse_tolerance("0.5")
        ({'simplify_px': 0.0, 'simplify_m': 2.0}, {'simplify_px': 0.5, 'simplify_m': 0.0})
    """
    match = TOLERANCE.match(text)
    if not match:
        raise ConfigError(
            f"--simplify {text!r}: expected a number of pixels (0.5 or 0.5px) or metres (2m)."
        )
    value, unit = float(match.group(1)), match.group(2) or "px"
    if unit == "m":
        return {"simplify_px": 0.0, "simplify_m": value}
    return {"simplify_px": value, "simplify_m": 0.0}


def read_rules_file(path: Path) -> list[Any]:
    """Rules from a YAML file: a list, or a mapping with `rules:` (or `postprocess.rules`)."""
    raw = read_yaml(path, "rules")
    if isinstance(raw, dict):
        raw = raw.get("postprocess", raw)
        raw = raw.get("rules") if isinstance(raw, dict) else raw
    rules = parse_rules(raw, where=str(path))
    return [rule.model_dump() for rule in rules]


def resolved_settings(args: argparse.Namespace) -> PostprocessSettings:
    """The config's `postprocess` section with the command-line options on top."""
    settings = load_config(args.config, args.overrides).postprocess
    if args.thresholds is None and args.rules is None and args.simplify is None:
        return settings
    document = settings.model_dump()
    if args.thresholds is not None:
        document["thresholds"] = args.thresholds
    if args.rules is not None:
        document["rules"] = read_rules_file(args.rules)
    if args.simplify is not None:
        document["polygons"].update(parse_tolerance(args.simplify))
    try:
        return PostprocessSettings.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"postprocess.{where}: {message}.") from None


def run(args: argparse.Namespace) -> int:
    settings = resolved_settings(args)
    classes = load_classes(args.classes) if args.classes is not None else None
    result = vectorize(
        args.raster,
        args.out,
        settings,
        classes=classes,
        grid_sizes=args.grid_sizes,
        image_id=args.image_id,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    counts = result.counts()
    summary = ", ".join(f"{name} {count}" for name, count in counts.items())
    print(f"{args.out}: {sum(counts.values())} polygons ({summary})")
    return 0
