"""How much memory a model's forward pass holds per pixel, and how much prediction may use.

`--window auto` picks the largest window whose forward pass fits a budget; that needs the
model's activation memory per input pixel. It is measured, not derived from settings, so it
holds for any model (U-Net, ensemble, a plain callable): one forward pass of a small input with
a global forward hook that, after every module, sums the bytes of the tensors still alive.
Convolutions with padding keep every feature map proportional to the input's area, so the
figure per pixel at a small size holds at any size.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spectraseg.errors import ConfigError
from spectraseg.predict.tta import Model

__all__ = [
    "CPU_ACTIVATION_BUDGET_BYTES",
    "GPU_MEMORY_SHARE",
    "activation_bytes_per_pixel",
    "available_memory_bytes",
    "check_buffers_fit",
    "memory_budget_bytes",
    "prediction_buffer_bytes",
    "window_bytes_per_pixel",
]

# A few hundred MB for one batch's forward pass and the copies of its windows around it: with
# the blending band, the input being read and Python, torch and GDAL themselves (about 320 MB),
# a 4096-column scene then stays well under 1.5 GB (docs/benchmarks.md, case c).
CPU_ACTIVATION_BUDGET_BYTES = 512 * 2**20
# Copies of a window's input the predict path holds beside the network's activations, which the
# hook cannot see: the TTA transform and its channels-last copy, the predictor's numpy
# preprocessing (float64 temporaries included), padding. Calibrated on the default model with
# 13 bands: a 704 px window peaked about 600 B per pixel above the measured activations.
WINDOW_INPUT_COPIES = 10
# Share of the GPU's free memory one batch of windows may take; the rest absorbs the
# allocator's caching and the convolution workspaces the hook cannot see.
GPU_MEMORY_SHARE = 0.5


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _tensors(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _tensors(item)


class _LiveTensors:
    """Tensors seen by forward hooks, by storage, forgotten as soon as Python frees them."""

    def __init__(self) -> None:
        self.live: dict[int, tuple[weakref.ref[torch.Tensor], int]] = {}
        self.peak = 0

    def note(self, value: Any) -> None:
        for tensor in _tensors(value):
            storage = tensor.untyped_storage()
            # In-place layers return their input: one storage, counted once.
            self.live[storage.data_ptr()] = (weakref.ref(tensor), storage.nbytes())
        self.live = {key: entry for key, entry in self.live.items() if entry[0]() is not None}
        self.peak = max(self.peak, sum(size for _, size in self.live.values()))

    def hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        del module
        self.note(inputs)
        self.note(output)


def activation_bytes_per_pixel(
    model: Model, channels: int, size_px: int, device: torch.device | str = "cpu"
) -> float:
    """Peak bytes of tensors alive during one forward pass of `model`, per input pixel.

    Runs `model` once on a (1, channels, size_px, size_px) zero input under a global forward
    hook. Counts every tensor a module receives or returns while it is alive (skip connections
    held for the decoder included), plus the model's own input and output; weights are not
    per-pixel and are left out. A callable without modules counts its input and output only.
    `size_px` must be a valid size for the model (a multiple of its size multiple).
    """
    tracker = _LiveTensors()
    batch = torch.zeros((1, channels, size_px, size_px), device=device)
    handle = nn.modules.module.register_module_forward_hook(tracker.hook)
    try:
        with torch.inference_mode():
            tracker.note(batch)
            output = model(batch)
            tracker.note((batch, output))
    finally:
        handle.remove()
    return tracker.peak / (size_px * size_px)


def window_bytes_per_pixel(activations: float, channels: int) -> float:
    """Bytes per window pixel a prediction batch holds: the network's measured activations plus
    `WINDOW_INPUT_COPIES` float32 copies of the window's `channels` input bands."""
    return activations + WINDOW_INPUT_COPIES * channels * 4


def memory_budget_bytes(device: torch.device) -> int:
    """Bytes one batch of windows may hold in activations on `device`.

    CPU: a fixed few hundred MB (`CPU_ACTIVATION_BUDGET_BYTES`), so prediction stays small
    beside other work. GPU: a share of the memory free right now.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * GPU_MEMORY_SHARE)
    return CPU_ACTIVATION_BUDGET_BYTES


def available_memory_bytes() -> int | None:
    """Memory the system can still give without swapping (Linux MemAvailable), or None."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def prediction_buffer_bytes(
    *,
    window_px: int,
    batch_size: int,
    channels: int,
    num_classes: int,
    extent_width: int,
    bytes_per_pixel: float = 0.0,
) -> int:
    """Bytes the streamed prediction holds for these settings, before the model's weights.

    One batch of windows (the measured `bytes_per_pixel`, else `WINDOW_INPUT_COPIES` copies of
    the input and two of the probabilities), the blending band ((K + 1) x window x extent width)
    and the block of input rows being read (channels x window x extent width), all float32.

    Example:
        >>> prediction_buffer_bytes(window_px=100_000, batch_size=1, channels=8,
        ...     num_classes=6, extent_width=200_000) / 2**30 > 1000
        True
    """
    area = window_px * window_px
    per_pixel = bytes_per_pixel or (WINDOW_INPUT_COPIES * channels + 2 * num_classes) * 4
    batch = batch_size * area * per_pixel
    band = (num_classes + 1 + channels) * window_px * extent_width * 4
    return int(batch + band)


def check_buffers_fit(needed_bytes: int, *, where: str, settings: str) -> None:
    """Refuse settings whose buffers exceed the memory available, before allocating them.

    A window or batch far too large would otherwise end in a MemoryError after minutes, or
    in the kernel killing the process (or its neighbours).
    """
    available = available_memory_bytes()
    if available is None or needed_bytes <= available:
        return
    raise ConfigError(
        f"{where}: {settings} need about {needed_bytes / 2**30:.1f} GiB of buffers, more than "
        f"the {available / 2**30:.1f} GiB of memory available. Use a smaller --window (or "
        "--window auto) or --batch."
    )
