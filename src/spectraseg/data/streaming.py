"""In memory or streamed: which way training reads its scenes (`data.streaming`).

Scenes in memory are cut into patches at no cost, so small training sets stay there; a set
whose arrays would not fit the memory budget is read window by window instead
(`data/streamed.py`), which costs a pass to index it and some reading per patch (mostly saved
by the block cache). `auto` chooses by comparing the bytes the in-memory path would hold with
the budget; the choice and its reason are logged.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

__all__ = ["StreamingMode", "available_memory_bytes", "choose_streaming", "in_memory_bytes"]

StreamingMode = Literal["auto", "always", "never"]

# Share of the available memory the in-memory path may take when no budget is set: the model,
# the DataLoader workers and the rest of the machine need the other half.
DEFAULT_BUDGET_SHARE = 0.5


def in_memory_bytes(shapes: Sequence[tuple[int, int]], channels: int, num_classes: int) -> int:
    """Bytes the in-memory path holds for scenes of these (H, W) shapes.

    Per pixel: the image and its normalized copy (float32 each), validity, the class masks,
    ignore and usable masks; plus, for the largest scene, what building the sampler's index
    and reading the scene take at once (its sorted positions and box sums: about 32 bytes, and
    a float32 copy of the bands).

    Example:
        >>> in_memory_bytes([(10_000, 10_000)] * 4, channels=8, num_classes=5) / 1e9
        35.6
    """
    if not shapes:
        return 0
    kept = 8 * channels + num_classes + 4
    transient = 4 * channels + 32
    pixels = [height * width for height, width in shapes]
    return sum(pixels) * kept + max(pixels) * transient


def available_memory_bytes() -> int | None:
    """Memory the system could give now (Linux `MemAvailable`), else physical memory; None
    when neither can be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def choose_streaming(
    mode: StreamingMode, estimated_bytes: int, budget_bytes: int | None
) -> tuple[bool, str]:
    """(stream?, why) for a training set whose in-memory arrays take `estimated_bytes`.

    Example:
        >>> choose_streaming("auto", 3 * 2**30, 8 * 2**30)
        (False, 'in memory: 3.2 GB of arrays fit the 8.6 GB budget')
    """
    size = f"{estimated_bytes / 1e9:.1f} GB of arrays"
    if mode == "always":
        return True, f"streamed: data.streaming is always ({size} in memory)"
    if mode == "never":
        return False, f"in memory: data.streaming is never ({size})"
    if budget_bytes is None:
        return False, f"in memory: {size}, and the machine's memory is unknown"
    budget = f"{budget_bytes / 1e9:.1f} GB budget"
    if estimated_bytes <= budget_bytes:
        return False, f"in memory: {size} fit the {budget}"
    return True, f"streamed: {size} would not fit the {budget}"


def memory_budget_bytes(budget_gb: float | None) -> int | None:
    """`data.memory_budget_gb` in bytes, or half of the memory available now."""
    if budget_gb is not None:
        return int(budget_gb * 1e9)
    available = available_memory_bytes()
    return None if available is None else int(available * DEFAULT_BUDGET_SHARE)
