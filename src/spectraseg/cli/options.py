"""Options shared by several verbs, defined once so they read the same everywhere."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from spectraseg.errors import ConfigError


def add_out_dir(parser: argparse.ArgumentParser, *, help_text: str, required: bool = True) -> None:
    parser.add_argument("--out", type=Path, required=required, metavar="DIR", help=help_text)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """--config FILE and repeated --set KEY=VALUE overrides."""
    parser.add_argument("--config", type=Path, metavar="FILE", help="YAML config file")
    add_overrides(parser)


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """Repeated --set KEY=VALUE overrides, typed by the config field they name."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value, e.g. --set train.epochs=5 (repeatable)",
    )


def resolve_device(accelerator: str) -> torch.device:
    """--accelerator cpu|cuda|auto as a torch device; auto takes a GPU when there is one."""
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--accelerator cuda: no CUDA device is available; use cpu or auto.")
    if accelerator in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")
