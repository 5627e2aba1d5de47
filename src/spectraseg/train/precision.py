"""Mixed precision: which float type a training step computes in, and the fp16 loss scaler.

`train.precision` picks it: `auto` is bf16 on a GPU that has it (Ampere and later), fp16 on an
older GPU and fp32 on the CPU. bf16 keeps float32's range, so its gradients need no scaling;
fp16 does not, so its loss is multiplied by a `GradScaler` factor before the backward pass and
the gradients divided by it before clipping and the optimizer step (steps whose gradients
overflow are skipped and the factor lowered). Weights, optimizer state and the losses stay in
float32 (`losses.py` casts the logits back); only the network's convolutions run in half
precision.

bf16 may be forced on the CPU (recent CPUs run it natively; older ones emulate it slowly).
fp16 is refused there: the scaler it needs is a GPU tool, and `auto` is the portable choice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from spectraseg.errors import ConfigError

__all__ = [
    "Precision",
    "PrecisionChoice",
    "StepPrecision",
    "resolve_precision",
    "restore_scaler",
    "scaler_state",
]

log = logging.getLogger(__name__)

PrecisionChoice = Literal["auto", "fp32", "bf16", "fp16"]
"""What `train.precision` may say."""
Precision = Literal["fp32", "bf16", "fp16"]
"""What a step computes in, once `auto` is decided for a device."""

_DTYPES: dict[Precision, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


@dataclass(frozen=True)
class StepPrecision:
    """The float type of the forward pass on one device; `dtype` None is plain float32."""

    precision: Precision
    device_type: str

    @property
    def dtype(self) -> torch.dtype | None:
        return _DTYPES[self.precision]

    def autocast(self) -> torch.autocast:
        """The context a forward pass (and its loss) runs in; a no-op for fp32."""
        return torch.autocast(
            device_type=self.device_type,
            dtype=self.dtype or torch.float32,
            enabled=self.dtype is not None,
        )

    def grad_scaler(self) -> torch.amp.GradScaler:
        """fp16's loss scaler; for every other precision a disabled one, which passes the
        loss and the optimizer step through unchanged (so the loop has one code path)."""
        return torch.amp.GradScaler(self.device_type, enabled=self.precision == "fp16")


def resolve_precision(
    choice: PrecisionChoice,
    device: torch.device,
    *,
    purpose: Literal["train", "predict"] = "train",
) -> StepPrecision:
    """The precision a training (or, with `purpose="predict"`, a prediction) on `device` runs
    in; logs the choice. Prediction follows the same rule: inference in bf16 on a GPU is what
    the network trained in there, and fp16 on the CPU is slower than fp32.

    Raises:
        ConfigError: fp16 off a GPU, bf16 on a GPU without it, or half precision on a device
            that is neither a CPU nor a CUDA GPU.
    """
    precision: Precision
    if choice == "auto":
        if device.type != "cuda":
            precision = "fp32"
        elif torch.cuda.is_bf16_supported():
            precision = "bf16"
        else:
            precision = "fp16"
    else:
        precision = choice
    if precision != "fp32":
        _check_supported(precision, device, purpose)
    if precision != "fp32" or choice != "auto":
        where = str(device)
        if device.type == "cpu":
            where = "the CPU (slow where the CPU emulates bf16)"
        doing = "training" if purpose == "train" else "predicting"
        log.info("%s in %s on %s (%s.precision=%s)", doing, precision, where, purpose, choice)
    return StepPrecision(precision, device.type)


def _check_supported(precision: Precision, device: torch.device, purpose: str) -> None:
    setting = f"{purpose}.precision={precision}"
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise ConfigError(
                f"{setting}: this GPU has no bf16; use {purpose}.precision=auto (fp16 here) "
                "or fp32."
            )
        return
    if device.type == "cpu":
        if precision == "fp16":
            raise ConfigError(
                f"{setting}: fp16 needs a CUDA GPU (the CPU runs it slower than fp32, and "
                f"training's loss scaler is a GPU tool); on the CPU use {purpose}.precision=auto "
                "(fp32) or bf16."
            )
        return
    raise ConfigError(
        f"{setting}: half precision is supported on CUDA GPUs and the CPU, not on "
        f"{device.type}; use {purpose}.precision=fp32."
    )


def scaler_state(scaler: torch.amp.GradScaler) -> dict[str, Any]:
    """The scaler's factor and growth counter as plain numbers (for `last.pt`); empty when
    the scaler is off."""
    return dict(scaler.state_dict())


def restore_scaler(scaler: torch.amp.GradScaler, saved: Mapping[str, Any]) -> None:
    """Put back what `scaler_state` saved, so a resumed fp16 run steps with the same factor;
    a run that saved none (another precision, an older file) keeps the scaler's start."""
    if scaler.is_enabled() and saved:
        scaler.load_state_dict(dict(saved))
