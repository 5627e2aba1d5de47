"""`spectraseg train --devices N`: N training processes on this machine, started as torchrun
would start them, meeting on a free loopback port.

Each process is a rank of `train_model` (`train/distributed.py` says what the ranks share);
rank 0 alone writes the run folder. A user error in any rank (bad data, an existing run
folder) comes back as the same one-line error; the other ranks are stopped.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as multiprocessing
from torch.multiprocessing.spawn import ProcessExitedException, start_processes

from spectraseg.config import Config
from spectraseg.errors import SpectrasegError
from spectraseg.train.distributed import (
    Rank,
    check_global_batch,
    free_loopback_port,
    process_group,
)
from spectraseg.train.fit import FitResult
from spectraseg.workflow.training import train_model

__all__ = ["train_on_devices"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Job:
    """What every rank needs to train; sent to the spawned processes."""

    config: Config
    data_dir: Path
    out_dir: Path
    resume: bool
    overwrite: bool
    device_type: str
    devices: int
    port: int
    log_level: int


def train_on_devices(
    config: Config,
    *,
    devices: int,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    overwrite: bool = False,
    device_type: str = "cpu",
    log_level: int = logging.INFO,
) -> FitResult:
    """Train on `devices` processes (GPUs, or CPU processes with cores // devices threads
    each) and return rank 0's result, without its weights and history (they are in the run
    folder).

    Raises:
        SpectrasegError: of the first rank that failed with one, re-raised here.
    """
    if devices < 1:
        raise SpectrasegError(f"--devices {devices}: give at least 1.")
    if device_type == "cuda" and devices > torch.cuda.device_count():
        raise SpectrasegError(
            f"--devices {devices}: only {torch.cuda.device_count()} GPUs are visible here."
        )
    check_global_batch(config.train.batch_size, devices)
    job = _Job(
        config=config,
        data_dir=Path(data_dir),
        out_dir=Path(out_dir),
        resume=resume,
        overwrite=overwrite,
        device_type=device_type,
        devices=devices,
        port=free_loopback_port(),
        log_level=log_level,
    )
    context = multiprocessing.get_context("spawn")
    reports: Any = context.SimpleQueue()
    log.info("training on %d %s processes (port %d)", devices, device_type, job.port)
    # A rank that failed with a user error reported it below, then exited 2.
    with contextlib.suppress(ProcessExitedException):
        # torch leaves start_processes unannotated.
        start_processes(  # type: ignore[no-untyped-call]
            _run_rank, args=(job, reports), nprocs=devices, join=True, start_method="spawn"
        )
    outcome: FitResult | None = None
    failure: str | None = None
    while not reports.empty():
        kind, value = reports.get()
        if kind == "result":
            outcome = value
        elif failure is None:
            failure = value
    if failure is not None:
        raise SpectrasegError(failure)
    if outcome is None:
        raise RuntimeError("distributed training ended without a result from rank 0")
    return outcome


def _run_rank(index: int, job: _Job, reports: Any) -> None:
    """One rank's process: its environment, logging and process group, then `train_model`."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(job.port),
        RANK=str(index),
        WORLD_SIZE=str(job.devices),
        LOCAL_RANK=str(index),
        LOCAL_WORLD_SIZE=str(job.devices),
    )
    rank = Rank(rank=index, world_size=job.devices, local_rank=index, local_world_size=job.devices)
    # Rank 0 speaks for the run; the others only warn, with their rank in front.
    logging.basicConfig(
        level=job.log_level if rank.is_main else logging.WARNING,
        format="%(levelname)s: %(message)s" if rank.is_main else f"rank {index}: %(message)s",
        force=True,
    )
    device = rank.device(job.device_type)
    try:
        with process_group(rank, device):
            result = train_model(
                job.config,
                data_dir=job.data_dir,
                out_dir=job.out_dir,
                resume=job.resume,
                overwrite=job.overwrite,
                device=device,
                rank=rank,
            )
    except SpectrasegError as error:
        reports.put(("error", str(error)))
        raise SystemExit(2) from None
    if rank.is_main:
        # Small, so that the pipe never fills while the parent waits for the processes.
        reports.put(("result", replace(result, best_weights={}, history=())))
