"""`fit`: epochs of training and validation, early stopping, a time budget and checkpoints.

Each epoch trains on freshly drawn patches (`train_one_epoch`), validates on the fixed windows
(`evaluate`), tunes per-class thresholds on the validation predictions, and writes `last.pt`,
`best.pt` when the validation mean Jaccard improved, `history.csv`, `curves.png` and the
TensorBoard event log (`train/event_log.py`). Training
ends after `epochs`, when validation has not improved for `early_stopping_patience` epochs, or
when `max_minutes` run out: then the current step finishes, validation runs, and everything is
written as at a normal end. Every run validates at least once. With `weight_average`, the
weights validated and saved are a moving average of the training weights
(`train/weight_average.py`); `last.pt` keeps the training weights too, for `--resume`.

On a GPU the steps run in mixed precision (`train/precision.py`), and with
`batch_size_auto` the batch is the largest that fits, found by halving (`train/batch_size.py`).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal, cast

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.utils.data import DataLoader, Subset, default_collate

from spectraseg.data.dataset import PatchDataset, ValidationSet
from spectraseg.models.head import Head
from spectraseg.models.pretrained import set_trainable
from spectraseg.settings import Settings
from spectraseg.train.batch_size import largest_fitting_batch, restored_step
from spectraseg.train.checkpoint import Checkpoint, save_checkpoint
from spectraseg.train.distributed import (
    Rank,
    agree,
    broadcast_float,
    check_global_batch,
    rank_share,
    smallest,
    threads_per_process,
)
from spectraseg.train.event_log import EventLog, open_event_log
from spectraseg.train.loop import Evaluation, Loss, evaluate, train_one_epoch
from spectraseg.train.metrics import mean_over_present
from spectraseg.train.precision import (
    PrecisionChoice,
    StepPrecision,
    resolve_precision,
    restore_scaler,
    scaler_state,
)
from spectraseg.train.run_folder import HistoryRow, RunFolder
from spectraseg.train.schedule import Plateau, ScheduleSettings, learning_rate
from spectraseg.train.weight_average import WeightAverage

__all__ = [
    "EpochCallback",
    "FitResult",
    "FitState",
    "TrainSettings",
    "cpu_count",
    "default_workers",
    "filled_checkpoint",
    "fit",
    "history_row",
]

log = logging.getLogger(__name__)

Stopped = Literal["epochs", "time", "early_stopping", "caller"]
"""Why training ended; "caller" is `on_epoch_end` asking to stop (a search pruning a trial)."""
EpochCallback = Callable[[int, float], bool]
"""Called after each validation with (epoch, validation mean Jaccard); True stops training."""


class TrainSettings(Settings):
    """Optimization and stopping (`train` in the config)."""

    epochs: int = Field(default=40, ge=1)
    max_minutes: float | None = Field(default=None, gt=0.0)
    """Time budget: after it, the current step finishes, validation runs, outputs are written."""
    batch_size: int = Field(default=8, ge=1)
    """Patches per optimizer step, over all processes; with `batch_size_auto`, the largest
    tried."""
    batch_size_auto: bool = False
    """Halve `batch_size` until one training step fits the device's memory (GPUs; on the CPU
    the size is kept). The size chosen is logged, and kept in `history.csv` and `last.pt`."""
    patches_per_epoch: int = Field(default=256, ge=1)
    """Training patches drawn per epoch; an epoch is this many patches, not a pass over data."""
    optimizer: Literal["adamw", "sgd"] = "adamw"
    learning_rate: float = Field(default=1e-3, gt=0.0)
    weight_decay: float = Field(default=1e-4, ge=0.0)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    """SGD momentum (Nesterov when `nesterov`)."""
    nesterov: bool = True
    grad_clip_norm: float | None = Field(default=5.0, gt=0.0)
    """Gradients with a larger global norm are scaled down to it; None turns clipping off."""
    schedule: ScheduleSettings = ScheduleSettings()
    weight_average: float | None = Field(default=None, gt=0.0, lt=1.0)
    """Validate, tune thresholds for and save an exponential moving average of the weights
    with this decay per step (e.g. 0.99: about the last 100 steps), not the last step's
    weights (`train/weight_average.py`); steadier scores from short runs. None: off."""
    early_stopping_patience: int | None = Field(default=12, ge=1)
    """Stop after this many validations without a better mean Jaccard; None never stops early."""
    seed: int = 0
    num_workers: int | None = Field(default=None, ge=0)
    """DataLoader worker processes; None: one per spare core, at most 2, 0 on a single core."""
    threads: int | None = Field(default=None, ge=1)
    """Torch CPU threads; None: every core this process may use."""
    channels_last: bool = True
    """NHWC memory layout: 1.1x faster training steps here (docs/benchmarks.md, "Training")."""
    precision: PrecisionChoice = "auto"
    """The float type of the forward pass: auto is bf16 on a GPU that has it, fp16 with a loss
    scaler on an older one, fp32 on the CPU; bf16 may be forced on the CPU, fp16 may not."""
    compile: bool = False
    """torch.compile the model for the training steps: faster steps after a compile of tens
    of seconds. Validation runs uncompiled (its windows differ in size, and each new size
    would compile again)."""
    sync_batch_norm: bool = False
    """Distributed training: batch norm statistics over the global batch (SyncBatchNorm,
    GPUs) instead of each rank's share of it."""
    centre_crop_px: int = Field(default=0, ge=0)
    """Valid-region training: the model sees the whole `data.patch_size` patch, the loss and
    the validation scores count only its centre without this many pixels at each side (the
    DSTL 3rd place: 112 px in, 80 px scored, 16). The model card records it so prediction
    drops the same border of each window by default."""


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity mask
        return os.cpu_count() or 1


def default_workers() -> int:
    """Patch drawing is cheap next to a U-Net step: a spare core or two keeps up."""
    return min(2, cpu_count() - 1)


@dataclass
class FitState:
    """What changes from epoch to epoch; all of it goes into `last.pt` for `--resume`."""

    epoch: int = 0
    step: int = 0
    seconds: float = 0.0
    best_score: float = -math.inf
    best_epoch: int = 0
    stale_epochs: int = 0
    thresholds: tuple[float, ...] = ()
    history: list[dict[str, float | int | str]] = field(default_factory=list)
    batch_size: int | None = None
    """The global batch this run steps with (`batch_size_auto` may have chosen it)."""


@dataclass(frozen=True)
class FitResult:
    """The outcome of `fit`; `best_weights` and `thresholds` are what `best.pt` holds."""

    best_weights: dict[str, torch.Tensor]
    thresholds: tuple[float, ...]
    best_score: float
    best_epoch: int
    epochs: int
    stopped: Stopped
    history: tuple[HistoryRow, ...]


def _decay_budget_seconds(settings: TrainSettings) -> float | None:
    """The time budget cosine decays over (`schedule.decay_over_budget`), in seconds, if any."""
    schedule = settings.schedule
    if settings.max_minutes is None or schedule.name != "cosine" or not schedule.decay_over_budget:
        return None
    return settings.max_minutes * 60


def _optimizer(model: nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=settings.learning_rate,
            momentum=settings.momentum,
            nesterov=settings.nesterov and settings.momentum > 0,
            weight_decay=settings.weight_decay,
        )
    return torch.optim.AdamW(
        model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
    )


def _cpu_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}


@contextmanager
def _progress_bar(enabled: bool, total: int, description: str) -> Iterator[Callable[[float], None]]:
    """A progress bar on stderr showing the running loss; a no-op when disabled."""
    if not enabled:
        yield lambda loss: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
    )
    console = Console(stderr=True)
    if not console.is_terminal:
        # A bar redrawn into a log file or a pipe is noise; the per-epoch log line remains.
        yield lambda loss: None
        return
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(description, total=total, loss=math.nan)
        losses: list[float] = []

        def advance(loss: float) -> None:
            losses.append(loss)
            progress.update(task, advance=1, loss=sum(losses) / len(losses))

        yield advance


def history_row(
    state: FitState,
    evaluation: Evaluation,
    *,
    train_loss: float,
    rate: float,
    tuned_score: float,
    class_names: Sequence[str],
) -> dict[str, float | int | str]:
    """One line of `history.csv`: where training stands and how validation scored."""
    row: dict[str, float | int | str] = {
        "epoch": state.epoch,
        "step": state.step,
        "seconds": round(state.seconds, 1),
        "learning_rate": rate,
        "train_loss": train_loss,
        "val_loss": evaluation.loss,
        "val_jaccard": evaluation.mean_jaccard,
        "val_jaccard_tuned": tuned_score,
    }
    for name, value in zip(class_names, evaluation.counts.jaccard(), strict=True):
        row[f"jaccard_{name}"] = float(value)
    if state.batch_size is not None:
        row["batch_size"] = state.batch_size
    return row


def fit(
    model: nn.Module,
    train: PatchDataset,
    validation: ValidationSet,
    *,
    settings: TrainSettings,
    loss_fn: Loss,
    head: Head,
    device: torch.device,
    class_names: Sequence[str],
    size_multiple: int,
    checkpoint: Checkpoint | None = None,
    run: RunFolder | None = None,
    resume: Mapping[str, Any] | None = None,
    started: float | None = None,
    progress: bool = False,
    on_epoch_end: EpochCallback | None = None,
    rank: Rank | None = None,
    frozen: nn.Module | None = None,
    frozen_epochs: int = 0,
) -> FitResult:
    """Train `model` in place and return the best weights and tuned thresholds.

    Args:
        size_multiple: what validation windows are padded to (2**depth for a U-Net).
        checkpoint: a template for `best.pt` and `last.pt` (model description, bands, classes,
            normalization, config); its weights, epoch, score and thresholds are filled in.
        run: where to write checkpoints, history and curves; None writes nothing.
        resume: the `training_state` of a `last.pt` to continue from, plus optionally
            "best_weights" (those of `best.pt`) for the result.
        started: `time.monotonic()` when the run began (data loading counts against
            `max_minutes`); default now.
        progress: show a progress bar on stderr.
        on_epoch_end: told each epoch's validation score once its files are written; returning
            True ends training there, as a time budget would (a search's pruner uses this).
        rank: this process's place in distributed training (`train/distributed.py`; the
            process group already set up): `settings.batch_size` is then the global batch,
            split evenly over the ranks; rank 0 alone validates, writes to `run` and calls
            `on_epoch_end`, and its stop decisions hold for all. Other ranks' results carry
            only the epochs and why training stopped.
        frozen: a part of `model` (a pretrained encoder) that does not train during the first
            `frozen_epochs` epochs.
    """
    started = time.monotonic() if started is None else started
    deadline = started + settings.max_minutes * 60 if settings.max_minutes else None
    world = rank.world_size if rank is not None else 1
    main = rank is None or rank.is_main
    check_global_batch(settings.batch_size, world)
    local_processes = rank.local_world_size if rank is not None else 1
    torch.set_num_threads(settings.threads or threads_per_process(local_processes, cpu_count()))
    precision = resolve_precision(settings.precision, device)
    model.to(device)
    if settings.channels_last:
        # Module.to accepts memory_format at run time; torch's overloads do not declare it.
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = _optimizer(model, settings)
    scaler = precision.grad_scaler()
    state = FitState()
    plateau = Plateau(patience=settings.schedule.patience_epochs)
    best_weights = _cpu_weights(model)
    average: WeightAverage | None = None
    if settings.weight_average is not None and main:
        # On resume the model holds last.pt's weights, which are the average.
        average = WeightAverage(model, settings.weight_average)
    if resume is not None:
        state, best_weights = _restore(resume, optimizer, plateau, best_weights, scaler)
        if "live_weights" in resume:
            model.load_state_dict(resume["live_weights"])
    else:
        torch.manual_seed(settings.seed)
    if not settings.batch_size_auto:
        state.batch_size = settings.batch_size
    elif state.batch_size is None:
        state.batch_size = _largest_batch(
            model, optimizer, train, settings, loss_fn, device, precision, rank
        )
    elif main:
        log.info("batch of %d patches, found when the run started", state.batch_size)
    batch_size = state.batch_size
    step_model = model
    if rank is not None and world > 1:
        step_model = _data_parallel(model, settings, device)
    if settings.compile:
        # After loading state and wrapping for DDP: the compiled wrapper shares the original's
        # parameters, so checkpoints (of `model`) keep their plain keys.
        step_model = cast(nn.Module, torch.compile(step_model))
    train_items: PatchDataset | Subset[object] = train
    if rank is not None and world > 1:
        train_items = rank_share(train, rank, len(train))
    steps_per_epoch = max(1, len(train) // batch_size)
    workers = default_workers() if settings.num_workers is None else settings.num_workers
    if settings.num_workers is None and world > 1 and device.type == "cpu":
        workers = 0  # the ranks already take every core

    budget_s = _decay_budget_seconds(settings)
    spent_before = state.seconds  # earlier sessions' training, when resumed
    epoch_share = 0.0

    def spent_share() -> float:
        if budget_s is None:
            return 0.0
        return min(1.0, (spent_before + time.monotonic() - started) / budget_s)

    def rate_at(step: int) -> float:
        return learning_rate(
            step,
            settings.schedule,
            base=settings.learning_rate,
            steps_per_epoch=steps_per_epoch,
            total_epochs=settings.epochs,
            reductions=plateau.reductions,
            # Distributed ranks keep rank 0's share for the epoch: replicas step with one rate.
            budget_share=epoch_share if world > 1 else spent_share(),
        )

    stopped: Stopped = "epochs"
    session_start = time.monotonic() - state.seconds
    validated = False
    events: EventLog | None = None
    if main and run is not None:
        events = open_event_log(run.tensorboard, first_epoch=state.epoch + 1)
    try:
        while state.epoch < settings.epochs or not validated:
            train_loss = math.nan
            out_of_time = False
            if state.epoch < settings.epochs:
                if frozen is not None:
                    set_trainable(frozen, state.epoch >= frozen_epochs)
                train.set_epoch(state.epoch)
                if world > 1 and budget_s is not None:
                    epoch_share = broadcast_float(spent_share(), rank)
                local_batch = batch_size // world
                loader = DataLoader(
                    train_items,
                    batch_size=local_batch,
                    num_workers=workers,
                    drop_last=len(train_items) >= local_batch,
                    pin_memory=device.type == "cuda",
                )
                description = f"epoch {state.epoch + 1}/{settings.epochs}"
                if state.history:
                    description += f" (val Jaccard {state.history[-1]['val_jaccard']:.3f})"
                with _progress_bar(progress and main, steps_per_epoch, description) as bar:
                    on_step = _averaging(bar, average, model, first_update=state.step + 1)
                    result = train_one_epoch(
                        step_model,
                        loader,
                        optimizer,
                        loss_fn,
                        device=device,
                        learning_rate=rate_at,
                        first_step=state.step,
                        clip_norm=settings.grad_clip_norm,
                        deadline=deadline,
                        channels_last=settings.channels_last,
                        on_step=on_step,
                        agree=(lambda late: agree(late, rank)) if rank is not None else None,
                        crop_px=settings.centre_crop_px,
                        precision=precision,
                        scaler=scaler,
                    )
                train_loss, out_of_time = result.mean_loss, result.out_of_time
                state.step += result.steps
                state.epoch += 1
            validated = True
            if main:
                score, best_weights = _validate_and_write(
                    model if average is None else average.module,
                    validation,
                    state,
                    settings=settings,
                    loss_fn=loss_fn,
                    head=head,
                    device=device,
                    size_multiple=size_multiple,
                    class_names=class_names,
                    train_loss=train_loss,
                    rate=rate_at(max(0, state.step - 1)),
                    checkpoint=checkpoint,
                    run=run,
                    optimizer=optimizer,
                    scaler=scaler,
                    plateau=plateau,
                    best_weights=best_weights,
                    session_start=session_start,
                    rank=rank,
                    precision=precision,
                    events=events,
                    live=model,
                )
            else:
                state.seconds = time.monotonic() - session_start
                # Rank 0 alone validated: its score drives every rank's learning rate plateau.
                score = broadcast_float(math.nan, rank)
                _follow_score(state, score)
                plateau.update(score)
            called_off = main and on_epoch_end is not None and on_epoch_end(state.epoch, score)
            if agree(called_off, rank):
                stopped = "caller"
                log.info("stopped after epoch %d by the caller", state.epoch)
                break
            if out_of_time:  # already agreed, step by step
                stopped = "time"
                log.info("time budget of %g minutes used up; stopping", settings.max_minutes)
                break
            patience = settings.early_stopping_patience
            if agree(patience is not None and state.stale_epochs >= patience, rank):
                stopped = "early_stopping"
                log.info("no better validation score for %d epochs; stopping", patience)
                break
    finally:
        if events is not None:
            events.close()
    if main:
        log.info(
            "best mean Jaccard %.3f at epoch %d; thresholds %s",
            state.best_score,
            state.best_epoch,
            ", ".join(
                f"{name} {t:.2f}" for name, t in zip(class_names, state.thresholds, strict=True)
            ),
        )
    return FitResult(
        best_weights=best_weights,
        thresholds=state.thresholds,
        best_score=state.best_score,
        best_epoch=state.best_epoch,
        epochs=state.epoch,
        stopped=stopped,
        history=tuple(state.history),
    )


def _largest_batch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train: PatchDataset,
    settings: TrainSettings,
    loss_fn: Loss,
    device: torch.device,
    precision: StepPrecision,
    rank: Rank | None,
) -> int:
    """`train.batch_size_auto`: the largest global batch, `settings.batch_size` halved until
    a training step fits every rank's device.

    Each rank tries its share of the batch on the plain model (no DDP: a rank that runs out
    of memory must not leave the others waiting in a gradient exchange); the smallest share
    that fits on all ranks wins.
    """
    world = rank.world_size if rank is not None else 1
    train.set_epoch(0)

    def try_batch(size: int) -> None:
        patches = default_collate([train[index % len(train)] for index in range(size)])

        def step() -> None:
            train_one_epoch(
                model,
                [patches],
                optimizer,
                loss_fn,
                device=device,
                learning_rate=lambda step: settings.learning_rate,
                clip_norm=settings.grad_clip_norm,
                channels_last=settings.channels_last,
                crop_px=settings.centre_crop_px,
                # No loss scaler: a first fp16 step that overflows would be skipped, and the
                # optimizer state it allocates would go unmeasured.
                precision=precision,
            )

        restored_step(model, optimizer, step, device=device)

    local = smallest(largest_fitting_batch(settings.batch_size // world, try_batch), rank)
    chosen = local * world
    if rank is None or rank.is_main:
        log.info(
            "batch of %d patches (train.batch_size_auto, from %d on %s)",
            chosen,
            settings.batch_size,
            device,
        )
    return chosen


def _validate_and_write(
    model: nn.Module,
    validation: ValidationSet,
    state: FitState,
    *,
    settings: TrainSettings,
    loss_fn: Loss,
    head: Head,
    device: torch.device,
    size_multiple: int,
    class_names: Sequence[str],
    train_loss: float,
    rate: float,
    checkpoint: Checkpoint | None,
    run: RunFolder | None,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    plateau: Plateau,
    best_weights: dict[str, torch.Tensor],
    session_start: float,
    rank: Rank | None = None,
    precision: StepPrecision | None = None,
    events: EventLog | None = None,
    live: nn.Module | None = None,
) -> tuple[float, dict[str, torch.Tensor]]:
    """Validate `model`, update `state` and the plateau, write `best.pt` when better,
    `last.pt`, history, curves and the event log; returns the score (sent to the other
    ranks) and the best weights.

    `live` is the model that trains when `model` is its weight average: `last.pt` then keeps
    the live weights too, in its training state, for `--resume`."""
    evaluation = evaluate(
        model,
        validation,
        loss_fn,
        head=head,
        device=device,
        size_multiple=size_multiple,
        channels_last=settings.channels_last,
        crop_px=settings.centre_crop_px,
        precision=precision,
    )
    state.seconds = time.monotonic() - session_start
    score = evaluation.mean_jaccard
    score = 0.0 if math.isnan(score) else score
    score = broadcast_float(score, rank)
    thresholds, tuned = evaluation.tuned()
    row = history_row(
        state,
        evaluation,
        train_loss=train_loss,
        rate=rate,
        tuned_score=mean_over_present(tuned),
        class_names=class_names,
    )
    if not state.history or state.history[-1]["epoch"] != state.epoch:
        # A resumed run with no epoch left validates without adding a duplicate row.
        state.history.append(row)
        if events is not None:
            events.add_epoch(row, class_names)
    if score > state.best_score:
        state.best_score, state.best_epoch, state.stale_epochs = score, state.epoch, 0
        state.thresholds = tuple(float(t) for t in thresholds)
        best_weights = _cpu_weights(model)
        if run is not None and checkpoint is not None:
            best = filled_checkpoint(checkpoint, best_weights, state, epoch=state.epoch)
            save_checkpoint(run.best, best)
    else:
        state.stale_epochs += 1
    plateau.update(score)
    log.info(
        "epoch %d: train loss %.4f, validation loss %.4f, mean Jaccard %.3f (tuned %.3f)%s",
        state.epoch,
        train_loss,
        evaluation.loss,
        score,
        mean_over_present(tuned),
        " *" if state.best_epoch == state.epoch else "",
    )
    if run is not None:
        if checkpoint is not None:
            # last.pt predicts with its own weights: give it this epoch's tuned thresholds.
            last = filled_checkpoint(
                checkpoint, _cpu_weights(model), state, epoch=state.epoch
            ).with_card(thresholds=tuple(float(t) for t in thresholds))
            training_state = _training_state(state, optimizer, plateau, scaler)
            if live is not None and live is not model:
                training_state["live_weights"] = _cpu_weights(live)
            save_checkpoint(run.last, replace(last, training_state=training_state))
        run.write_history(state.history)
        run.write_curves(state.history, class_names)
    return score, best_weights


def _averaging(
    on_step: Callable[[float], None],
    average: WeightAverage | None,
    model: nn.Module,
    *,
    first_update: int,
) -> Callable[[float], None]:
    """`on_step`, preceded by an update of `average` (if any) towards `model`'s new weights."""
    if average is None:
        return on_step
    updates = itertools.count(first_update)

    def after_step(loss: float) -> None:
        average.update(model, next(updates))
        on_step(loss)

    return after_step


def _follow_score(state: FitState, score: float) -> None:
    """What rank 0 decided from `score`, kept on another rank (which never writes it)."""
    if score > state.best_score:
        state.best_score, state.best_epoch, state.stale_epochs = score, state.epoch, 0
    else:
        state.stale_epochs += 1


def _data_parallel(model: nn.Module, settings: TrainSettings, device: torch.device) -> nn.Module:
    """`model` under DistributedDataParallel (which makes every rank start from rank 0's
    weights), its batch norms synchronised across ranks when asked."""
    from torch.nn.parallel import DistributedDataParallel

    if settings.sync_batch_norm:
        # torch leaves convert_sync_batchnorm unannotated.
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # type: ignore[no-untyped-call]
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def filled_checkpoint(
    template: Checkpoint, weights: dict[str, torch.Tensor], state: FitState, *, epoch: int
) -> Checkpoint:
    """`template` with these weights and the state's best score and thresholds, for `epoch`."""
    return replace(
        template.with_card(thresholds=state.thresholds),
        weights=weights,
        epoch=epoch,
        best_score=state.best_score,
        training_state=None,
    )


def _training_state(
    state: FitState,
    optimizer: torch.optim.Optimizer,
    plateau: Plateau,
    scaler: torch.amp.GradScaler,
) -> dict[str, Any]:
    return {
        "optimizer": optimizer.state_dict(),
        "grad_scaler": scaler_state(scaler),
        "batch_size": state.batch_size,
        "epoch": state.epoch,
        "step": state.step,
        "seconds": state.seconds,
        "best_score": state.best_score,
        "best_epoch": state.best_epoch,
        "stale_epochs": state.stale_epochs,
        "thresholds": list(state.thresholds),
        "history": state.history,
        "plateau": plateau.state_dict(),
        **_rng_states(),
    }


def _rng_states() -> dict[str, Any]:
    """Every random generator a step may draw from, as tensors and lists (`weights_only` loads
    them): torch's (dropout, DataLoader worker seeds), CUDA's on a GPU, and numpy's and Python's
    global ones for code that uses them (patch drawing itself is seeded per item)."""
    numpy_state = np.random.get_state(legacy=False)
    python_state = random.getstate()
    states: dict[str, Any] = {
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": {
            "keys": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "position": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "python_rng": [python_state[0], list(python_state[1]), python_state[2]],
    }
    # Only a process that uses the GPU has CUDA generators worth saving (and asking would
    # start CUDA in one that does not).
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        states["cuda_rng"] = torch.cuda.get_rng_state_all()
    return states


def _restore_rng_states(saved: Mapping[str, Any]) -> None:
    """Put back what `_rng_states` saved (older checkpoints hold only torch's)."""
    torch.set_rng_state(saved["torch_rng"])
    if "numpy_rng" in saved:
        state = saved["numpy_rng"]
        np.random.set_state(
            {
                "bit_generator": "MT19937",
                "state": {"key": state["keys"].numpy().astype(np.uint32), "pos": state["position"]},
                "has_gauss": state["has_gauss"],
                "gauss": state["gauss"],
            }
        )
    if "python_rng" in saved:
        version, internal, gauss = saved["python_rng"]
        random.setstate((version, tuple(internal), gauss))
    if "cuda_rng" in saved and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["cuda_rng"])


def _restore(
    saved: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    plateau: Plateau,
    best_weights: dict[str, torch.Tensor],
    scaler: torch.amp.GradScaler,
) -> tuple[FitState, dict[str, torch.Tensor]]:
    optimizer.load_state_dict(saved["optimizer"])
    restore_scaler(scaler, saved.get("grad_scaler", {}))
    if "best_weights" in saved:
        best_weights = dict(saved["best_weights"])
    plateau.load_state_dict(saved["plateau"])
    _restore_rng_states(saved)
    state = FitState(
        epoch=int(saved["epoch"]),
        step=int(saved["step"]),
        seconds=float(saved["seconds"]),
        best_score=float(saved["best_score"]),
        best_epoch=int(saved["best_epoch"]),
        stale_epochs=int(saved["stale_epochs"]),
        thresholds=tuple(float(t) for t in saved["thresholds"]),
        history=[dict(row) for row in saved["history"]],
        batch_size=int(saved["batch_size"]) if saved.get("batch_size") else None,
    )
    return state, best_weights
