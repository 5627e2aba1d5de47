"""`spectraseg train --data DIR --out RUN_DIR [--per-class]`: train a model into a run folder
(or one binary model per class, merged by `RUN_DIR/ensemble.yaml`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch

from spectraseg.cli.options import add_config_options, resolve_device
from spectraseg.config import MODEL_NAMES, Config, load_config
from spectraseg.errors import ConfigError, SpectrasegError
from spectraseg.train.distributed import Rank, process_group
from spectraseg.train.run_folder import RunFolder
from spectraseg.workflow.launch import train_on_devices
from spectraseg.workflow.training import train_model

log = logging.getLogger(__name__)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a U-Net (or a baseline) into a run folder",
        description="Train on the labelled scenes of a data folder. RUN_DIR receives "
        "config.yaml, best.pt, last.pt, history.csv, curves.png and train.log.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="data folder (default: the config's run.data, relative to the config file)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder")
    add_config_options(parser)
    parser.add_argument("--epochs", type=int, metavar="N", help="same as --set train.epochs=N")
    parser.add_argument(
        "--max-minutes",
        type=float,
        metavar="M",
        help="time budget: after it, finish the step, validate and write everything",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in RUN_DIR from its last.pt"
    )
    parser.add_argument("--model", choices=MODEL_NAMES, help="same as --set model.name=NAME")
    parser.add_argument(
        "--per-class",
        action="store_true",
        help="train one binary model per class into RUN_DIR/classes/<name>/ and write "
        "RUN_DIR/ensemble.yaml, which `spectraseg predict RUN_DIR` reads as one model",
    )
    parser.add_argument(
        "--devices",
        type=int,
        metavar="N",
        help="train a network on N processes (DistributedDataParallel: N GPUs, or N CPU "
        "processes with cores/N threads each); train.batch_size is the global batch. Under "
        "torchrun, the ranks come from torchrun instead",
    )
    parser.add_argument(
        "--init-from",
        type=Path,
        metavar="CKPT",
        help="start from a trained checkpoint or run folder of the same architecture: matching "
        "layers are loaded, a changed class list gets a fresh head",
    )
    parser.add_argument(
        "--adapt-bands",
        action="store_true",
        help="with --init-from: accept other bands, copying the filters of shared bands by name "
        "and starting the others from their mean",
    )


def resolved_config(args: argparse.Namespace) -> Config:
    """The config file (on --resume, default the run's own) with every override applied."""
    overrides = list(args.overrides)
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    if args.max_minutes is not None:
        overrides.append(f"train.max_minutes={args.max_minutes}")
    if args.model is not None:
        overrides.append(f"model.name={args.model}")
    path = args.config
    if path is None and args.resume:
        path = RunFolder(args.out).config
    return load_config(path, overrides)


def _data_dir(args: argparse.Namespace, config: Config) -> Path:
    if args.data is not None:
        return Path(args.data)
    if config.run.data is None:
        raise ConfigError("--data DIR is missing, and the config names no run.data; give one.")
    if args.config is None or config.run.data.is_absolute():
        return config.run.data
    return Path(args.config).resolve().parent / config.run.data


def run(args: argparse.Namespace) -> int:
    if args.adapt_bands and args.init_from is None:
        raise ConfigError("--adapt-bands adapts the checkpoint of --init-from CKPT; give one.")
    if args.epochs is not None and args.epochs < 1:
        raise ConfigError(f"--epochs {args.epochs}: train for at least 1 epoch.")
    if args.max_minutes is not None and args.max_minutes <= 0:
        raise ConfigError(f"--max-minutes {args.max_minutes}: give a positive time budget.")
    config = resolved_config(args)
    data_dir = _data_dir(args, config)
    device = resolve_device(args.accelerator)
    if args.per_class:
        return _train_per_class(args, config, data_dir, device)
    rank = Rank.from_environment()
    # What every single-run path passes to train_model (the run folder and where to start).
    run: dict[str, Any] = {
        "data_dir": data_dir,
        "out_dir": args.out,
        "resume": args.resume,
        "overwrite": args.overwrite,
        "init_from": args.init_from,
        "adapt_bands": args.adapt_bands,
    }
    if args.devices is not None and args.devices < 1:
        raise ConfigError(f"--devices {args.devices}: give at least 1.")
    if rank is not None and rank.world_size > 1:
        if args.devices is not None and args.devices != rank.local_world_size:
            raise ConfigError(
                f"--devices {args.devices}, but torchrun started {rank.local_world_size} "
                "processes on this node; drop --devices under torchrun."
            )
        if not rank.is_main:
            logging.getLogger("spectraseg").setLevel(logging.WARNING)
        device = rank.device(device.type)
        with process_group(rank, device):
            result = train_model(
                config, device=device, progress=not args.quiet and rank.is_main, rank=rank, **run
            )
        if not rank.is_main:
            return 0
    elif args.devices is not None and args.devices > 1:
        if args.init_from is not None:
            raise ConfigError("--init-from with --devices: not supported yet; use torchrun.")
        result = train_on_devices(
            config,
            devices=args.devices,
            data_dir=data_dir,
            out_dir=args.out,
            resume=args.resume,
            overwrite=args.overwrite,
            device_type=device.type,
            log_level=logging.WARNING if args.quiet else logging.INFO,
        )
    else:
        result = train_model(config, device=device, progress=not args.quiet, **run)
    if config.run.report:
        _write_report(args.out, data_dir, device)
    log.info(
        "%s: best validation mean Jaccard %.3f (epoch %d of %d, stopped by %s)",
        args.out,
        result.best_score,
        result.best_epoch,
        result.epochs,
        result.stopped.replace("_", " "),
    )
    return 0


def _train_per_class(
    args: argparse.Namespace, config: Config, data_dir: Path, device: torch.device
) -> int:
    from spectraseg.workflow.per_class import train_per_class

    outcome = train_per_class(
        config,
        data_dir=data_dir,
        out_dir=args.out,
        resume=args.resume,
        overwrite=args.overwrite,
        device=device,
        progress=not args.quiet,
    )
    if config.run.report:
        for member in outcome.runs.values():
            _write_report(member, data_dir, device)
    scores = ", ".join(f"{name} {r.best_score:.3f}" for name, r in outcome.results.items())
    log.info("%s: validation Jaccard per class model: %s", outcome.ensemble, scores)
    return 0


def _write_report(run_dir: Path, data_dir: Path, device: torch.device) -> None:
    """RUN_DIR/report.html for the validation scenes. The run is complete without it, so a
    failure here is a warning with the command that retries it, not a failed training."""
    from spectraseg.report.build import REPORT_FILE, write_report
    from spectraseg.report.validation import validation_source

    try:
        source = validation_source(run_dir, data_dir, device=device)
        write_report([source], run_dir / REPORT_FILE, overwrite=True)
    except (SpectrasegError, OSError) as error:
        log.warning(
            "%s: training is complete but its report failed (%s); retry with "
            "spectraseg report %s --data %s",
            run_dir,
            error,
            run_dir,
            data_dir,
        )
