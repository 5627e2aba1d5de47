"""The training and validation loops, plain enough to read in one sitting.

`train_one_epoch` steps through one epoch of batches; `evaluate` scores the fixed validation
windows. Everything around them (epochs, schedules, early stopping, checkpoints) is in
`train/fit.py`; nothing here touches files.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as functional
from torch import nn

from spectraseg.data.dataset import ValidationSet
from spectraseg.models.head import Head
from spectraseg.models.unet import probabilities
from spectraseg.train.metrics import ClassCounts, ThresholdSweep
from spectraseg.train.precision import StepPrecision

__all__ = [
    "EpochResult",
    "Evaluation",
    "centre",
    "evaluate",
    "evaluate_probabilities",
    "pad_to_multiple",
    "train_one_epoch",
]

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class EpochResult:
    """What one pass over the training batches did."""

    mean_loss: float
    steps: int
    out_of_time: bool


def centre(tensor: torch.Tensor, crop_px: int) -> torch.Tensor:
    """The last two axes without `crop_px` pixels at each side: the valid region of a patch.

    Example:
        >>> centre(torch.zeros(1, 112, 112), 16).shape
        torch.Size([1, 80, 80])
    """
    if crop_px == 0:
        return tensor
    height, width = tensor.shape[-2:]
    return tensor[..., crop_px : height - crop_px, crop_px : width - crop_px]


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    loss_fn: Loss,
    *,
    device: torch.device,
    learning_rate: Callable[[int], float],
    first_step: int = 0,
    clip_norm: float | None = None,
    deadline: float | None = None,
    channels_last: bool = False,
    on_step: Callable[[float], None] | None = None,
    agree: Callable[[bool], bool] | None = None,
    crop_px: int = 0,
    precision: StepPrecision | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> EpochResult:
    """One epoch of optimizer steps; stops early, after a whole step, once `deadline` passes.

    Args:
        batches: (image (N, C, P, P), mask (N, K, P, P), ignore (N, P, P)) tensors.
        learning_rate: the rate for a given global step (`train/schedule.py`).
        first_step: the global step number of this epoch's first step.
        clip_norm: largest gradient norm; larger gradients are scaled down to it.
        deadline: `time.monotonic()` value after which no new step starts.
        on_step: called with each step's loss, e.g. to move a progress bar.
        agree: turns this process's "out of time" into the verdict every process shares
            (distributed training: rank 0's clock), so all ranks stop after the same step.
        crop_px: valid-region training: the loss counts only the patch without this many
            pixels at each side, which the model sees as context (`centre`).
        precision: the float type of the forward pass and loss (`train/precision.py`);
            None is float32.
        scaler: fp16's loss scaler; None (or a disabled one) steps unscaled.
    """
    if scaler is None:
        scaler = torch.amp.GradScaler(device.type, enabled=False)
    model.train()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    total, steps, out_of_time = 0.0, 0, False
    for image, mask, ignore in batches:
        rate = learning_rate(first_step + steps)
        for group in optimizer.param_groups:
            group["lr"] = rate
        image = image.to(device, non_blocking=True, memory_format=memory_format)
        mask = mask.to(device, non_blocking=True)
        ignore = ignore.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with _autocast(precision):
            logits = model(image)
            loss = loss_fn(centre(logits, crop_px), centre(mask, crop_px), centre(ignore, crop_px))
        # torch leaves backward unannotated
        scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
        if clip_norm is not None:
            # Clip the true gradients: fp16's are still multiplied by the scaler's factor.
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        scaler.step(optimizer)  # skips the step when fp16 gradients overflowed
        scaler.update()
        # .item() waits for the device; once per step is what the progress bar needs anyway.
        value = float(loss.item())
        total += value
        steps += 1
        if on_step is not None:
            on_step(value)
        if deadline is not None:
            late = time.monotonic() >= deadline
            if agree(late) if agree is not None else late:
                out_of_time = True
                break
    return EpochResult(total / max(1, steps), steps, out_of_time)


def _autocast(precision: StepPrecision | None) -> AbstractContextManager[object]:
    return precision.autocast() if precision is not None else nullcontext()


def pad_to_multiple(batch: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad (N, C, H, W) at the bottom and right to multiples of `multiple` by reflection.

    Reflection keeps edge statistics close to the image's, so predictions near the border
    are not pulled towards whatever a constant pad would suggest. Crop the output back with
    `[..., :H, :W]`.
    """
    height, width = batch.shape[-2:]
    pad_bottom = -height % multiple
    pad_right = -width % multiple
    if not pad_bottom and not pad_right:
        return batch
    # Reflection needs the pad to be smaller than the side; replicate covers tiny windows.
    mode = "reflect" if pad_bottom < height and pad_right < width else "replicate"
    return functional.pad(batch, (0, pad_right, 0, pad_bottom), mode=mode)


@dataclass(frozen=True)
class Evaluation:
    """Validation results: mean loss, counts at threshold 0.5, and the threshold sweep."""

    loss: float
    counts: ClassCounts
    sweep: ThresholdSweep

    @property
    def mean_jaccard(self) -> float:
        """Mean Jaccard at 0.5 over classes present in truth or prediction."""
        return self.counts.mean_jaccard()

    def tuned(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-class thresholds maximizing Jaccard on these windows, and the Jaccard there."""
        return self.sweep.best()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    validation: ValidationSet,
    loss_fn: Loss,
    *,
    head: Head,
    device: torch.device,
    size_multiple: int,
    channels_last: bool = False,
    crop_px: int = 0,
    precision: StepPrecision | None = None,
) -> Evaluation:
    """Score every validation window; counts are accumulated over all windows, not averaged.

    Windows are predicted one at a time (they may differ in size), padded to `size_multiple`
    and cropped back, so every pixel of the validation area counts exactly once; with
    valid-region training (`crop_px`) only each window's centre counts, as in training.
    The network runs in the training's `precision`; the loss and scores in float32.
    """
    model.eval()
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    num_classes = validation.masks[0].shape[0]
    sweep = ThresholdSweep(num_classes)
    loss_sum, loss_weight = 0.0, 0
    for image, mask, ignore in validation:
        height, width = image.shape[-2:]
        batch = pad_to_multiple(torch.from_numpy(image)[None], size_multiple)
        batch = batch.to(device, memory_format=memory_format)
        with _autocast(precision):
            logits = model(batch)[..., :height, :width].float()
        if crop_px and min(height, width) > 2 * crop_px:
            logits = centre(logits, crop_px)
            mask, ignore = (
                mask[:, crop_px:-crop_px, crop_px:-crop_px],
                ignore[crop_px:-crop_px, crop_px:-crop_px],
            )
        target = torch.from_numpy(np.ascontiguousarray(mask))[None].to(device)
        ignore_tensor = torch.from_numpy(np.ascontiguousarray(ignore))[None].to(device)
        valid_pixels = int(np.count_nonzero(~ignore))
        if valid_pixels:
            loss = float(loss_fn(logits, target, ignore_tensor).item())
            if math.isfinite(loss):
                loss_sum += loss * valid_pixels
                loss_weight += valid_pixels
        probs = probabilities(logits, head)[0].cpu().numpy()
        sweep.add(probs, mask, ignore)
    mean_loss = loss_sum / loss_weight if loss_weight else math.nan
    return Evaluation(mean_loss, sweep.counts_at(0.5), sweep)


def evaluate_probabilities(
    predict: Callable[[np.ndarray], np.ndarray], validation: ValidationSet
) -> Evaluation:
    """Score a model that maps a (C, h, w) window to (K, h, w) probabilities (no loss).

    The same counts and sweep as `evaluate`, for models that are not networks (the baselines).
    """
    num_classes = validation.masks[0].shape[0]
    sweep = ThresholdSweep(num_classes)
    for image, mask, ignore in validation:
        sweep.add(predict(image), mask, ignore)
    return Evaluation(math.nan, sweep.counts_at(0.5), sweep)
