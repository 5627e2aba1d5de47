"""`spectraseg config [CONFIG] [--set KEY=VALUE ...]`: print the resolved, validated config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from spectraseg.cli.options import add_overrides
from spectraseg.config import load_config


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "config",
        help="print the resolved, validated config",
        description="Read CONFIG (default: the built-in defaults), apply --set overrides, "
        "validate everything and print the complete config as YAML.",
    )
    parser.add_argument("config", type=Path, nargs="?", metavar="CONFIG", help="YAML config file")
    add_overrides(parser)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config, args.overrides)
    sys.stdout.write(config.to_yaml())
    return 0
