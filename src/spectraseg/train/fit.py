"""`fit`: epochs of training and validation, early stopping, a time budget and checkpoints.

Each epoch trains on freshly drawn patches (`train_one_epoch`), validates on the fixed windows
(`evaluate`), tunes per-class thresholds on the validation predictions, and writes `last.pt`,
`best.pt` when the validation mean Jaccard improved, `history.csv` and `curves.png`. Training
ends after `epochs`, when validation has not improved for `early_stopping_patience` epochs, or
when `max_minutes` run out: then the current step finishes, validation runs, and everything is
written as at a normal end. Every run validates at least once.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import numpy as np
import torch
from pydantic import Field
from torch import nn
from torch.utils.data import DataLoader

from spectraseg.classes import ClassList
from spectraseg.data.catalog import load_dataset
from spectraseg.data.dataset import PatchDataset, TrainingData, ValidationSet, prepare_training_data
from spectraseg.data.normalize import BandStats
from spectraseg.data.scene import Scene
from spectraseg.errors import CheckpointError, ConfigError, SpectrasegError
from spectraseg.models.registry import build_model
from spectraseg.settings import Settings
from spectraseg.train.checkpoint import (
    Checkpoint,
    git_commit,
    library_versions,
    load_checkpoint,
    save_checkpoint,
)
from spectraseg.train.forest import fit_forest
from spectraseg.train.index_threshold import fit_index_threshold
from spectraseg.train.loop import (
    Evaluation,
    Loss,
    evaluate,
    evaluate_probabilities,
    train_one_epoch,
)
from spectraseg.train.losses import build_loss
from spectraseg.train.run_folder import HistoryRow, RunFolder
from spectraseg.train.schedule import Plateau, ScheduleSettings, learning_rate

if TYPE_CHECKING:  # config.py composes TrainSettings from here: import it for types only
    from spectraseg.config import Config

__all__ = [
    "FitResult",
    "TrainSettings",
    "cpu_count",
    "default_workers",
    "fit",
    "train_model",
]

log = logging.getLogger(__name__)


class TrainSettings(Settings):
    """Optimization and stopping (`train` in the config)."""

    epochs: int = Field(default=40, ge=1)
    max_minutes: float | None = Field(default=None, gt=0.0)
    """Time budget: after it, the current step finishes, validation runs, outputs are written."""
    batch_size: int = Field(default=8, ge=1)
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
    early_stopping_patience: int | None = Field(default=12, ge=1)
    """Stop after this many validations without a better mean Jaccard; None never stops early."""
    seed: int = 0
    num_workers: int | None = Field(default=None, ge=0)
    """DataLoader worker processes; None: one per spare core, at most 2, 0 on a single core."""
    threads: int | None = Field(default=None, ge=1)
    """Torch CPU threads; None: every core this process may use."""
    channels_last: bool = True
    """NHWC memory layout: 1.1x faster training steps here (docs/benchmarks.md, "Training")."""
    compile: bool = False
    """torch.compile the model: faster steps after a compile of tens of seconds."""


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
class _State:
    """What changes from epoch to epoch; all of it goes into `last.pt` for `--resume`."""

    epoch: int = 0
    step: int = 0
    seconds: float = 0.0
    best_score: float = -math.inf
    best_epoch: int = 0
    stale_epochs: int = 0
    thresholds: tuple[float, ...] = ()
    history: list[dict[str, float | int | str]] = field(default_factory=list)


@dataclass(frozen=True)
class FitResult:
    """The outcome of `fit`; `best_weights` and `thresholds` are what `best.pt` holds."""

    best_weights: dict[str, torch.Tensor]
    thresholds: tuple[float, ...]
    best_score: float
    best_epoch: int
    epochs: int
    stopped: Literal["epochs", "time", "early_stopping"]
    history: tuple[HistoryRow, ...]


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


def _history_row(
    state: _State,
    evaluation: Evaluation,
    *,
    train_loss: float,
    rate: float,
    tuned_score: float,
    class_names: Sequence[str],
) -> dict[str, float | int | str]:
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
    return row


def fit(
    model: nn.Module,
    train: PatchDataset,
    validation: ValidationSet,
    *,
    settings: TrainSettings,
    loss_fn: Loss,
    head: str,
    device: torch.device,
    class_names: Sequence[str],
    size_multiple: int,
    checkpoint: Checkpoint | None = None,
    run: RunFolder | None = None,
    resume: Mapping[str, Any] | None = None,
    started: float | None = None,
    progress: bool = False,
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
    """
    started = time.monotonic() if started is None else started
    deadline = started + settings.max_minutes * 60 if settings.max_minutes else None
    torch.set_num_threads(settings.threads or cpu_count())
    model.to(device)
    if settings.channels_last:
        # Module.to accepts memory_format at run time; torch's overloads do not declare it.
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = _optimizer(model, settings)
    state = _State()
    plateau = Plateau(patience=settings.schedule.patience_epochs)
    best_weights = _cpu_weights(model)
    if resume is not None:
        state, best_weights = _restore(resume, optimizer, plateau, best_weights)
    else:
        torch.manual_seed(settings.seed)
    # Compile after loading state: the compiled wrapper shares the original's parameters.
    step_model = cast(nn.Module, torch.compile(model)) if settings.compile else model
    steps_per_epoch = max(1, len(train) // settings.batch_size)
    workers = default_workers() if settings.num_workers is None else settings.num_workers

    def rate_at(step: int) -> float:
        return learning_rate(
            step,
            settings.schedule,
            base=settings.learning_rate,
            steps_per_epoch=steps_per_epoch,
            total_epochs=settings.epochs,
            reductions=plateau.reductions,
        )

    stopped: Literal["epochs", "time", "early_stopping"] = "epochs"
    session_start = time.monotonic() - state.seconds
    validated = False
    while state.epoch < settings.epochs or not validated:
        train_loss = math.nan
        out_of_time = False
        if state.epoch < settings.epochs:
            train.set_epoch(state.epoch)
            loader = DataLoader(
                train,
                batch_size=settings.batch_size,
                num_workers=workers,
                drop_last=len(train) >= settings.batch_size,
                pin_memory=device.type == "cuda",
            )
            description = f"epoch {state.epoch + 1}/{settings.epochs}"
            if state.history:
                description += f" (val Jaccard {state.history[-1]['val_jaccard']:.3f})"
            with _progress_bar(progress, steps_per_epoch, description) as on_step:
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
                )
            train_loss, out_of_time = result.mean_loss, result.out_of_time
            state.step += result.steps
            state.epoch += 1
        evaluation = evaluate(
            step_model,
            validation,
            loss_fn,
            head=head,
            device=device,
            size_multiple=size_multiple,
            channels_last=settings.channels_last,
        )
        validated = True
        state.seconds = time.monotonic() - session_start
        score = evaluation.mean_jaccard
        score = 0.0 if math.isnan(score) else score
        thresholds, tuned = evaluation.tuned()
        row = _history_row(
            state,
            evaluation,
            train_loss=train_loss,
            rate=rate_at(max(0, state.step - 1)),
            tuned_score=_mean(tuned),
            class_names=class_names,
        )
        if not state.history or state.history[-1]["epoch"] != state.epoch:
            # A resumed run with no epoch left validates without adding a duplicate row.
            state.history.append(row)
        if score > state.best_score:
            state.best_score, state.best_epoch, state.stale_epochs = score, state.epoch, 0
            state.thresholds = tuple(float(t) for t in thresholds)
            best_weights = _cpu_weights(model)
            if run is not None and checkpoint is not None:
                best = _filled(checkpoint, best_weights, state, epoch=state.epoch)
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
            _mean(tuned),
            " *" if state.best_epoch == state.epoch else "",
        )
        if run is not None:
            if checkpoint is not None:
                # last.pt predicts with its own weights: give it this epoch's tuned thresholds.
                last = replace(
                    _filled(checkpoint, _cpu_weights(model), state, epoch=state.epoch),
                    thresholds=tuple(float(t) for t in thresholds),
                )
                training_state = _training_state(state, optimizer, plateau)
                save_checkpoint(run.last, replace(last, training_state=training_state))
            run.write_history(state.history)
            run.write_curves(state.history, class_names)
        if out_of_time:
            stopped = "time"
            log.info("time budget of %g minutes used up; stopping", settings.max_minutes)
            break
        patience = settings.early_stopping_patience
        if patience is not None and state.stale_epochs >= patience:
            stopped = "early_stopping"
            log.info("no better validation score for %d epochs; stopping", patience)
            break
    log.info(
        "best mean Jaccard %.3f at epoch %d; thresholds %s",
        state.best_score,
        state.best_epoch,
        ", ".join(f"{name} {t:.2f}" for name, t in zip(class_names, state.thresholds, strict=True)),
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


def _mean(values: np.ndarray) -> float:
    present = values[~np.isnan(values)]
    return float(present.mean()) if present.size else math.nan


def _filled(
    template: Checkpoint, weights: dict[str, torch.Tensor], state: _State, *, epoch: int
) -> Checkpoint:
    return replace(
        template,
        weights=weights,
        epoch=epoch,
        best_score=state.best_score,
        thresholds=state.thresholds,
        training_state=None,
    )


def _training_state(
    state: _State, optimizer: torch.optim.Optimizer, plateau: Plateau
) -> dict[str, Any]:
    return {
        "optimizer": optimizer.state_dict(),
        "epoch": state.epoch,
        "step": state.step,
        "seconds": state.seconds,
        "best_score": state.best_score,
        "best_epoch": state.best_epoch,
        "stale_epochs": state.stale_epochs,
        "thresholds": list(state.thresholds),
        "history": state.history,
        "plateau": plateau.state_dict(),
        "torch_rng": torch.get_rng_state(),
    }


def _restore(
    saved: Mapping[str, Any],
    optimizer: torch.optim.Optimizer,
    plateau: Plateau,
    best_weights: dict[str, torch.Tensor],
) -> tuple[_State, dict[str, torch.Tensor]]:
    optimizer.load_state_dict(saved["optimizer"])
    if "best_weights" in saved:
        best_weights = dict(saved["best_weights"])
    plateau.load_state_dict(saved["plateau"])
    torch.set_rng_state(saved["torch_rng"])
    state = _State(
        epoch=int(saved["epoch"]),
        step=int(saved["step"]),
        seconds=float(saved["seconds"]),
        best_score=float(saved["best_score"]),
        best_epoch=int(saved["best_epoch"]),
        stale_epochs=int(saved["stale_epochs"]),
        thresholds=tuple(float(t) for t in saved["thresholds"]),
        history=[dict(row) for row in saved["history"]],
    )
    return state, best_weights


# ---------------------------------------------------------------------------------------------
# A whole run: data folder + config -> run folder.


def _checkpoint_template(
    config: Config,
    scenes: Sequence[Scene],
    classes: ClassList,
    data: TrainingData,
    *,
    in_channels: int,
    model_settings: Mapping[str, Any],
    head: str,
) -> Checkpoint:
    """Everything `best.pt` says about the model except what training fills in."""
    index_names = set(config.data.indices.names)
    band_names = list(scenes[0].band_names)
    indices: list[str] = []
    # Indices are appended after the raw bands: peel them off the end.
    while band_names and band_names[-1] in index_names and len(indices) < len(index_names):
        indices.insert(0, band_names.pop())
    return Checkpoint(
        model_name=config.model.name,
        model_settings=dict(model_settings),
        in_channels=in_channels,
        num_classes=len(classes.classes),
        head=head,
        band_names=tuple(band_names),
        indices=tuple(indices),
        normalization={"method": data.normalization, **data.stats.to_dict()},
        class_names=classes.names,
        class_colours=classes.colours,
        thresholds=tuple(0.5 for _ in classes.classes),
        resolution=scenes[0].grid.resolution,
        patch_size=data.patch_size,
        epoch=0,
        best_score=-math.inf,
        seed=config.train.seed,
        versions=library_versions(),
        git_commit=git_commit(),
        config=config.model_dump(mode="json"),
        weights={},
    )


def train_model(
    config: Config,
    *,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    overwrite: bool = False,
    device: torch.device | None = None,
    progress: bool = False,
) -> FitResult:
    """Train the configured model on a data folder and fill a run folder.

    Args:
        resume: continue from `out_dir/last.pt` (U-Net only); `config` should be the run's own
            (`out_dir/config.yaml`), with only epochs or the time budget changed.
        overwrite: start over in a non-empty `out_dir`.

    Raises:
        OutputExistsError: `out_dir` is not empty and neither `resume` nor `overwrite` is set.
        DataError, LabelError, RasterError: the data folder cannot be used.
    """
    started = time.monotonic()
    run = RunFolder(Path(out_dir))
    if resume and config.model.name != "unet":
        raise ConfigError(
            f"--resume continues a U-Net; a {config.model.name} trains in one go. "
            "Drop --resume (and pass --overwrite) to train it again."
        )
    run.prepare(resume=resume, overwrite=overwrite)
    device = device or torch.device("cpu")
    try:
        with run.logging_to_file():
            return _train(
                config,
                data_dir,
                run,
                resume=resume,
                device=device,
                started=started,
                progress=progress,
            )
    except SpectrasegError:
        if not resume:
            run.remove_unfinished()
        raise


def _train(
    config: Config,
    data_dir: str | os.PathLike[str],
    run: RunFolder,
    *,
    resume: bool,
    device: torch.device,
    started: float,
    progress: bool,
) -> FitResult:
    log.info("training %s from %s into %s on %s", config.model.name, data_dir, run.path, device)
    if not resume:
        run.write_config(config.to_yaml())
    scenes, classes = load_dataset(
        data_dir,
        indices=config.data.indices,
        labels=config.data.labels,
        band_names=config.data.bands or None,
        resolution=config.data.resolution,
    )
    if config.model.name == "unet":
        return _train_unet(
            config,
            scenes,
            classes,
            run,
            resume=resume,
            device=device,
            started=started,
            progress=progress,
        )
    return _train_baseline(config, scenes, classes, run)


def _train_unet(
    config: Config,
    scenes: Sequence[Scene],
    classes: ClassList,
    run: RunFolder,
    *,
    resume: bool,
    device: torch.device,
    started: float,
    progress: bool,
) -> FitResult:
    settings = config.model.unet
    saved = load_checkpoint(run.last) if resume else None
    if saved is not None and saved.training_state is None:
        raise CheckpointError(f"{run.last}: holds no training state to resume from.")
    torch.manual_seed(config.train.seed)
    in_channels = scenes[0].num_bands
    model = build_model("unet", in_channels, len(classes.classes), settings)
    size_multiple = int(getattr(model, "size_multiple", 1))
    stats = BandStats.from_dict(saved.normalization) if saved is not None else None
    data = prepare_training_data(
        scenes,
        data=config.data,
        sampling=config.sampling,
        augment_settings=config.augment,
        size_multiple=size_multiple,
        patches_per_epoch=config.train.patches_per_epoch,
        seed=config.train.seed,
        stats=stats,
    )
    template = _checkpoint_template(
        config,
        scenes,
        classes,
        data,
        in_channels=in_channels,
        model_settings=settings.model_dump(mode="json"),
        head=settings.head,
    )
    resume_state: dict[str, Any] | None = None
    if saved is not None and saved.training_state is not None:
        model.load_state_dict(saved.weights)
        resume_state = dict(saved.training_state)
        if run.best.is_file():
            resume_state["best_weights"] = load_checkpoint(run.best).weights
        log.info("resuming %s after epoch %d", run.path, saved.epoch)
    return fit(
        model,
        data.train,
        data.validation,
        settings=config.train,
        loss_fn=build_loss(config.loss, settings.head),
        head=settings.head,
        device=device,
        class_names=classes.names,
        size_multiple=size_multiple,
        checkpoint=template,
        run=run,
        resume=resume_state,
        started=started,
        progress=progress,
    )


class _PixelModel(Protocol):
    """What the baselines share: probabilities of a whole image, and plain arrays to save."""

    def predict_image(self, image: np.ndarray) -> np.ndarray: ...

    def to_arrays(self) -> dict[str, np.ndarray]: ...


def _train_baseline(
    config: Config, scenes: Sequence[Scene], classes: ClassList, run: RunFolder
) -> FitResult:
    """A per-pixel baseline, on the same split, bands, indices and normalization as the U-Net."""
    started = time.monotonic()
    data = prepare_training_data(
        scenes,
        data=config.data,
        sampling=config.sampling,
        augment_settings=config.augment,
        size_multiple=1,
        patches_per_epoch=1,
        seed=config.train.seed,
    )
    train = data.train
    # Pixels outside the training region (validation blocks and their gap) are left out.
    ignored = [
        skip if region is None else skip | ~region
        for skip, region in zip(train.ignored, data.split.regions, strict=True)
    ]
    model: _PixelModel
    settings: Settings
    if config.model.name == "random-forest":
        settings = config.model.random_forest
        model = fit_forest(train.images, train.masks, ignored, config.model.random_forest)
    else:
        settings = config.model.index_threshold
        model = fit_index_threshold(
            train.images,
            train.masks,
            ignored,
            scenes[0].band_names,
            config.model.index_threshold,
            class_names=classes.names,
        )
    evaluation = evaluate_probabilities(model.predict_image, data.validation)
    thresholds, tuned = evaluation.tuned()
    score = evaluation.mean_jaccard
    score = 0.0 if math.isnan(score) else score
    state = _State(
        epoch=1,
        seconds=time.monotonic() - started,
        best_score=score,
        best_epoch=1,
        thresholds=tuple(float(t) for t in thresholds),
    )
    state.history.append(
        _history_row(
            state,
            evaluation,
            train_loss=math.nan,
            rate=math.nan,
            tuned_score=_mean(tuned),
            class_names=classes.names,
        )
    )
    template = _checkpoint_template(
        config,
        scenes,
        classes,
        data,
        in_channels=scenes[0].num_bands,
        model_settings=settings.model_dump(mode="json"),
        head="sigmoid",
    )
    # np.array copies (0-d arrays stay 0-d, unlike ascontiguousarray): tensors own their data.
    weights = {key: torch.from_numpy(np.array(value)) for key, value in model.to_arrays().items()}
    finished = _filled(template, weights, state, epoch=1)
    save_checkpoint(run.best, finished)
    save_checkpoint(run.last, finished)
    run.write_history(state.history)
    run.write_curves(state.history, classes.names)
    log.info(
        "%s: validation mean Jaccard %.3f (tuned %.3f)", config.model.name, score, _mean(tuned)
    )
    return FitResult(
        best_weights=weights,
        thresholds=state.thresholds,
        best_score=score,
        best_epoch=1,
        epochs=1,
        stopped="epochs",
        history=tuple(state.history),
    )
