"""`train.batch_size_auto`: the largest batch the device holds, found by halving.

On a GPU, memory rather than the data limits the batch of a large network or patch. With
`train.batch_size_auto`, `train.batch_size` is the largest batch tried: one real training step
(forward, backward and optimizer step, in the run's precision and memory layout) runs on a
batch of that size, and when the device runs out of memory the batch is halved and tried
again. Weights, buffers, optimizer state and random generators are put back after each try,
so the run that follows is the one a fixed batch of the chosen size gives.

On the CPU a step does not raise out-of-memory (the operating system ends the process
instead), so the first size is kept and the probe costs one step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from spectraseg.errors import ConfigError

__all__ = ["OUT_OF_MEMORY", "largest_fitting_batch", "restored_step"]

log = logging.getLogger(__name__)

# torch.OutOfMemoryError (torch 2.5 on) is what torch.cuda.OutOfMemoryError now names too;
# both are listed for the releases in which they differ.
OUT_OF_MEMORY: tuple[type[Exception], ...] = (
    torch.cuda.OutOfMemoryError,
    getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),
)


def largest_fitting_batch(start: int, try_batch: Callable[[int], object]) -> int:
    """The first of `start`, `start // 2`, ..., 1 for which `try_batch(size)` does not run
    out of device memory.

    Example:
        >>> def step(size):
        ...     if size > 5:
        ...         raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        >>> largest_fitting_batch(16, step)
        4

    Raises:
        ConfigError: not even one patch fits.
    """
    size = start
    while not _fits(size, try_batch):
        if size == 1:
            raise ConfigError(
                "train.batch_size_auto: even a batch of 1 patch runs out of device memory; "
                "lower data.patch_size or the network's size, or train on a larger device."
            )
        log.info("a batch of %d patches ran out of device memory; trying %d", size, size // 2)
        size //= 2
    return size


def _fits(size: int, try_batch: Callable[[int], object]) -> bool:
    try:
        try_batch(size)
    except OUT_OF_MEMORY:
        fits = False
    else:
        return True
    # Here, outside the except block, the failed step's tensors (held by the traceback) are
    # garbage; hand their blocks back so the next, smaller try finds them free.
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        torch.cuda.empty_cache()
    return fits


def restored_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: Callable[[], object],
    *,
    device: torch.device,
) -> None:
    """Run `step` (one training step of `model` by `optimizer`), then put back the weights,
    buffers (batch norm statistics), optimizer state and random generators it changed.

    The copies live on the CPU, so they take none of the device memory being measured.
    """
    weights = _cpu_copy(model.state_dict())
    optimizer_state = _cpu_copy(optimizer.state_dict())
    cuda_devices: list[int] = []
    if device.type == "cuda":
        cuda_devices = [torch.cuda.current_device() if device.index is None else device.index]
    try:
        with torch.random.fork_rng(devices=cuda_devices):
            step()
    finally:
        optimizer.zero_grad(set_to_none=True)
        model.load_state_dict(weights)
        optimizer.load_state_dict(optimizer_state)


def _cpu_copy(value: Any) -> Any:
    """`value` with every tensor copied to the CPU, and every dict and list copied."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, Mapping):
        return {key: _cpu_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_cpu_copy(item) for item in value]
    return value
