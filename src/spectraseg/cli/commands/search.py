"""`spectraseg search --data DIR --out DIR`: grow the architecture by a TPE search.

Also `--show` (the top trials and the study's figures) and `--suggest-space` (a narrowed space
around the top trials).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from spectraseg.cli.options import resolve_device
from spectraseg.errors import ConfigError

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search architectures and training settings (Optuna TPE), resumable",
        description="Train trial after trial with values drawn by TPE from a search space and "
        "keep DIR/best.yaml, a ready `spectraseg train --config` file. Rerun with the same --out "
        "to continue; a changed --space starts a refined study seeded with the old trials. A new "
        "study's first trial is the base config itself when the space holds it.",
    )
    parser.add_argument("--data", type=Path, metavar="DIR", help="data folder (as for train)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="search folder")
    parser.add_argument("--config", type=Path, metavar="FILE", help="base config the trials vary")
    parser.add_argument("--space", type=Path, metavar="FILE", help="search-space YAML")
    counts = parser.add_mutually_exclusive_group()
    counts.add_argument("--trials", type=int, metavar="N", help="run N more trials")
    counts.add_argument(
        "--total-trials", type=int, metavar="N", help="stop once the study holds N finished trials"
    )
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N", help="local worker processes"
    )
    parser.add_argument(
        "--storage", metavar="URL", help="study database (e.g. postgresql://...) for many machines"
    )
    parser.add_argument("--study", metavar="NAME", help="study name (default: the newest)")
    parser.add_argument(
        "--max-minutes-per-trial", type=float, metavar="M", help="time budget of each trial"
    )
    parser.add_argument(
        "--per-class",
        action="store_true",
        help="then train the best config once per class into DIR/per-class/ (classes/<name>/, "
        "ensemble.yaml, as `spectraseg train --per-class`); `spectraseg predict DIR/per-class` "
        "predicts every class",
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--show", action="store_true", help="top trials table and figures")
    modes.add_argument(
        "--suggest-space", action="store_true", help="write a space narrowed around the top trials"
    )


def run(args: argparse.Namespace) -> int:
    if args.show:
        from spectraseg.search.show import show_study

        table, _ = show_study(args.out, study=args.study, storage_url=args.storage)
        print(table)
        return 0
    if args.suggest_space:
        from spectraseg.search.suggest import write_suggested_space

        write_suggested_space(args.out, study=args.study, storage_url=args.storage)
        return 0
    if args.data is None:
        raise ConfigError(
            "--data DIR is required to search (only --show and --suggest-space work without it)."
        )
    from spectraseg.search.runner import SearchOptions, run_search

    outcome = run_search(
        SearchOptions(
            data_dir=args.data,
            out_dir=args.out,
            config_path=args.config,
            space_path=args.space,
            trials=args.trials,
            total_trials=args.total_trials,
            workers=args.workers,
            storage_url=args.storage,
            study=args.study,
            max_minutes_per_trial=args.max_minutes_per_trial,
            device=str(resolve_device(args.accelerator)),
            per_class=args.per_class,
        )
    )
    best = "none yet" if outcome.best_value is None else f"{outcome.best_value:.4f}"
    log.info(
        "study %s: %d finished trials, best validation mean Jaccard %s%s",
        outcome.study_name,
        outcome.finished,
        best,
        f" ({outcome.best_path})" if outcome.best_path else "",
    )
    if outcome.per_class is not None:
        log.info("per-class models of the best config: %s", outcome.per_class)
    return 0 if all(code == 0 for code in outcome.exit_codes) else 1
