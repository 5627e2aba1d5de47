"""Data-parallel training over processes: which rank this is, and what the ranks agree on.

Training across N processes is PyTorch's DistributedDataParallel: each rank steps on its own
share of every global batch and the gradients are averaged, so one step over N ranks with
batches of B / N is one step of a single process with batches of B (exactly so for losses that
are means over samples). The process group is set up by whoever started the processes:
`torchrun` (its RANK, WORLD_SIZE, LOCAL_RANK and MASTER_* variables; `Rank.from_environment`)
or `spectraseg train --devices N` (`workflow/launch.py`). GPUs talk over NCCL, CPUs over gloo.

Only rank 0 writes (checkpoints, history, figures, logs); every decision that ends a loop
(time budget, early stopping) is rank 0's, broadcast, so no rank waits for a step the others
never take.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, Subset

from spectraseg.errors import ConfigError

__all__ = [
    "Rank",
    "agree",
    "broadcast_float",
    "check_global_batch",
    "free_loopback_port",
    "process_group",
    "rank_share",
    "smallest",
    "threads_per_process",
]


@dataclass(frozen=True)
class Rank:
    """This process's place among the training processes."""

    rank: int
    world_size: int
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and logs."""
        return self.rank == 0

    @classmethod
    def from_environment(cls) -> Rank | None:
        """The rank `torchrun` (or SLURM through it) gave this process; None when not started
        that way."""
        if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
            return None
        try:
            world = int(os.environ["WORLD_SIZE"])
            return cls(
                rank=int(os.environ["RANK"]),
                world_size=world,
                local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world))),
            )
        except ValueError:
            raise ConfigError(
                "RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE must be integers; "
                "start distributed training with torchrun or spectraseg train --devices N."
            ) from None

    def device(self, kind: str) -> torch.device:
        """This rank's device: its own GPU (by local rank) on CUDA, the CPU otherwise."""
        return torch.device("cuda", self.local_rank) if kind == "cuda" else torch.device("cpu")


def check_global_batch(batch_size: int, processes: int) -> None:
    """Refuse a global batch that does not split evenly over the processes."""
    if batch_size % processes:
        raise ConfigError(
            f"train.batch_size {batch_size} does not split over {processes} processes; "
            f"give a multiple of {processes} (it is the global batch)."
        )


def threads_per_process(processes: int, cores: int) -> int:
    """CPU threads for each of `processes` training processes on `cores` cores.

    Example:
        >>> threads_per_process(2, 16), threads_per_process(4, 2)
        (8, 1)
    """
    return max(1, cores // processes)


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now, where the ranks of one machine meet; asking the
    kernel (port 0) keeps two runs on one machine from meeting on the same port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.contextmanager
def process_group(rank: Rank, device: torch.device) -> Iterator[None]:
    """Join the ranks' process group (MASTER_ADDR/MASTER_PORT from the environment) and
    leave it at the end. NCCL between GPUs, gloo between CPUs."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend="nccl" if device.type == "cuda" else "gloo",
        rank=rank.rank,
        world_size=rank.world_size,
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def rank_share(dataset: Dataset[object], rank: Rank, length: int) -> Subset[object]:
    """Rank `rank`'s items of an epoch of `length` items: every world_size-th, from `rank`.

    Batch b of each rank then holds items of global batch b (of size world_size x batch), so
    the ranks together step on what one process would. Every rank gets the same number of
    items (the last length % world_size are left out), so no rank waits for a missing batch.
    Items differ per rank because a patch is drawn from (seed, epoch, index).
    """
    per_rank = length // rank.world_size
    return Subset(dataset, range(rank.rank, per_rank * rank.world_size, rank.world_size))


def agree(flag: bool, rank: Rank | None) -> bool:
    """Rank 0's decision, on every rank (a time budget or early stopping ends all ranks at
    the same step; clocks and scores elsewhere do not count)."""
    if rank is None or rank.world_size == 1:
        return flag
    return bool(broadcast_float(float(flag), rank) != 0.0)


def broadcast_float(value: float, rank: Rank | None) -> float:
    """Rank 0's `value` on every rank."""
    if rank is None or rank.world_size == 1:
        return value
    backend = dist.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else None
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return float(tensor.item())


def smallest(value: int, rank: Rank | None) -> int:
    """The smallest of every rank's `value` (a batch size each rank's device can hold)."""
    if rank is None or rank.world_size == 1:
        return value
    backend = dist.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else None
    tensor = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
    return int(tensor.item())
