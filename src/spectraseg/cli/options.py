"""Options shared by several verbs, defined once so they read the same everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_out_dir(parser: argparse.ArgumentParser, *, help_text: str, required: bool = True) -> None:
    parser.add_argument("--out", type=Path, required=required, metavar="DIR", help=help_text)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """--config FILE and repeated --set KEY=VALUE overrides."""
    parser.add_argument("--config", type=Path, metavar="FILE", help="YAML config file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set train.epochs=5 (repeatable)",
    )
