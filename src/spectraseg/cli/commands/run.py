"""`spectraseg run CONFIG`: every stage of a run config, skipping what is up to date."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from spectraseg.cli.options import add_overrides, resolve_device
from spectraseg.io.lock import folder_lock
from spectraseg.pipeline.runner import run_pipeline
from spectraseg.pipeline.settings import load_run_config
from spectraseg.pipeline.stages import STAGE_KINDS


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the whole workflow of a config, resuming where it stopped",
        description="Prepare, (search,) train, predict, post-process, evaluate and report as "
        "the config's run: section says. A stage whose inputs and settings are unchanged is "
        "skipped, so a rerun continues after a crash and redoes only what a change affects. "
        f"Stages: {', '.join(STAGE_KINDS)}.",
    )
    parser.add_argument("config", type=Path, metavar="CONFIG", help="run config (YAML)")
    add_overrides(parser)
    parser.add_argument(
        "--from",
        dest="from_stage",
        metavar="STAGE",
        help="rerun this stage and every later one even when up to date",
    )
    parser.add_argument("--until", dest="until_stage", metavar="STAGE", help="stop after STAGE")


def run(args: argparse.Namespace) -> int:
    out = load_run_config(args.config, args.overrides).run.out
    assert out is not None  # load_run_config fills it in
    # One run per run folder: a second `spectraseg run` would interleave manifest.json.
    with folder_lock(out):
        results = run_pipeline(
            args.config,
            args.overrides,
            from_stage=args.from_stage,
            until_stage=args.until_stage,
            overwrite=args.overwrite,
            device=resolve_device(args.accelerator),
            progress=not args.quiet,
        )
    console = Console(soft_wrap=True, stderr=False)
    for result in results:
        state = f"ran in {result.seconds:.1f} s" if result.ran else "up to date"
        console.print(f"{result.name:<24} {state:<16} {result.summary}", highlight=False)
    return 0
