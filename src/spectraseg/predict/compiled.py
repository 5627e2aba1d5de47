"""`predict --compile`: the network through `torch.compile`, when the raster repays the warm-up.

Compiled with inductor's freezing (weights folded in as constants, batch norm merged into the
convolutions, weights pre-packed for the CPU kernels), the reference U-Net ran 1.15x to 1.2x
faster than eager channels-last on this CPU (docs/benchmarks.md). The compilation itself takes
10 to 20 seconds, so a small raster would finish sooner without it: the first batch runs eagerly and
is timed, and the network is compiled only if the time it would save on the remaining batches
exceeds the expected warm-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

import torch

from spectraseg.predict.tta import Model

__all__ = ["COMPILE_SPEEDUP", "COMPILE_WARMUP_S", "compile_model", "worth_compiling"]

log = logging.getLogger(__name__)

# Measured for the reference U-Net on the 2-core development CPU, quiet (docs/benchmarks.md):
# warm-ups of 9 to 18 s depending on inductor's on-disk cache; compiled 1.15x to 1.2x eager
# channels-last per 256 px window (0.19 against 0.23 s at batch 1, 0.15 against 0.18 at 2).
COMPILE_WARMUP_S = 20.0
COMPILE_SPEEDUP = 1.15
# Inductor options: freezing folds weights and batch norm into the compiled graph, which is
# what makes compiled inference faster than eager on a CPU.
COMPILE_OPTIONS: dict[str, str | int | bool | Callable[..., Any]] = {"freezing": True}


def worth_compiling(eager_seconds: float) -> tuple[bool, str]:
    """Whether compiling saves time when the network would run `eager_seconds` more eagerly.

    Example:
        >>> worth_compiling(10.0)[0], worth_compiling(600.0)[0]
        (False, True)
    """
    saved = eager_seconds * (1.0 - 1.0 / COMPILE_SPEEDUP)
    if saved > COMPILE_WARMUP_S:
        return True, f"about {saved:.0f} s saved on {eager_seconds:.0f} s of network time"
    return False, (
        f"{eager_seconds:.0f} s of network time left would save about {saved:.0f} s, "
        f"less than a warm-up of about {COMPILE_WARMUP_S:.0f} s"
    )


def compile_model(model: Model) -> Model:
    """`model` with its networks compiled: a predictor's own `compiled()` when it has one
    (compiling the network inside, not its numpy preprocessing), else `torch.compile(model)`."""
    own = getattr(model, "compiled", None)
    if callable(own):
        return cast(Model, own())
    return cast(Model, torch.compile(model, dynamic=False, options=COMPILE_OPTIONS))
