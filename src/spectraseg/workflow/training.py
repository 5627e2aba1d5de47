"""`train_model`: train a configured model on a data folder into a run folder.

The run-level work around `fit`: load the data folder, write `config.yaml`, build the model
and the `best.pt` template, resume from `last.pt` when asked, and log to `train.log`. A network
(any architecture in `models/registry.py`: U-Net, FC-DenseNet) trains epoch by epoch through
`fit`; a per-pixel baseline (random forest, index threshold) is fitted in one go on the same
split, bands, indices and normalization, and scored the same way.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from spectraseg.classes import ClassList
from spectraseg.config import Config
from spectraseg.data.catalog import (
    labelled_scene_shapes,
    load_dataset,
    open_lazy_dataset,
    select_classes,
)
from spectraseg.data.dataset import TrainingData, prepare_training_data
from spectraseg.data.indices import IndexSettings
from spectraseg.data.lazy_scene import LazyScene
from spectraseg.data.normalize import BandStats
from spectraseg.data.scene import Scene
from spectraseg.data.split import held_out_areas, split_record
from spectraseg.data.streamed import prepare_streamed_training_data
from spectraseg.data.streaming import choose_streaming, in_memory_bytes, memory_budget_bytes
from spectraseg.errors import CheckpointError, ConfigError
from spectraseg.io.lock import folder_lock
from spectraseg.io.state_dict import read_state_dict
from spectraseg.models.card import PER_PIXEL_MODELS, CardClass, ModelCard, Normalization
from spectraseg.models.head import Head
from spectraseg.models.pretrained import EncoderSettings, load_encoder_weights
from spectraseg.models.registry import build_model, model_names
from spectraseg.models.resnet import ResNetEncoder
from spectraseg.models.transfer import transfer_weights
from spectraseg.settings import Settings
from spectraseg.train.checkpoint import (
    Checkpoint,
    git_commit,
    library_versions,
    load_checkpoint,
    save_checkpoint,
)
from spectraseg.train.distributed import Rank
from spectraseg.train.fit import (
    EpochCallback,
    FitResult,
    FitState,
    filled_checkpoint,
    fit,
    history_row,
)
from spectraseg.train.forest import fit_forest
from spectraseg.train.index_threshold import fit_index_threshold
from spectraseg.train.loop import evaluate_probabilities
from spectraseg.train.losses import build_loss
from spectraseg.train.metrics import mean_over_present
from spectraseg.train.run_folder import RunFolder
from spectraseg.workflow.head_choice import choose_head

__all__ = ["train_model"]

log = logging.getLogger(__name__)


def _checkpoint_template(
    config: Config,
    scenes: Sequence[Scene | LazyScene],
    classes: ClassList,
    data: TrainingData,
    *,
    in_channels: int,
    model_settings: Mapping[str, Any],
    head: Head,
    size_multiple: int,
) -> Checkpoint:
    """Everything `best.pt` says about the model except what training fills in."""
    index_names = set(config.data.indices.names)
    band_names = list(scenes[0].band_names)
    indices: list[str] = []
    # Indices are appended after the raw bands: peel them off the end.
    while band_names and band_names[-1] in index_names and len(indices) < len(index_names):
        indices.insert(0, band_names.pop())
    custom = config.data.indices.custom
    card = ModelCard(
        model=config.model.name,
        model_settings=dict(model_settings),
        band_names=tuple(band_names),
        resolution=scenes[0].grid.resolution,
        indices=IndexSettings(
            names=tuple(indices),
            custom={name: spec for name, spec in custom.items() if name in indices},
        ),
        normalization=Normalization.model_validate(
            {"method": data.normalization, "stats": data.stats.to_dict()}
        ),
        classes=tuple(CardClass(name=c.name, id=c.id, colour=c.colour) for c in classes.classes),
        head="softmax" if head == "softmax" else "sigmoid",
        thresholds=tuple(0.5 for _ in classes.classes),
        patch_px=data.patch_size,
        size_multiple=size_multiple,
        centre_crop_px=config.train.centre_crop_px if size_multiple > 1 else 0,
        per_pixel=config.model.name in PER_PIXEL_MODELS,
    )
    if card.in_channels != in_channels:
        raise ValueError(f"{card.in_channels} card channels for a {in_channels}-channel model")
    return Checkpoint(
        card=card,
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
    on_epoch_end: EpochCallback | None = None,
    rank: Rank | None = None,
    init_from: str | os.PathLike[str] | None = None,
    adapt_bands: bool = False,
) -> FitResult:
    """Train the configured model on a data folder and fill a run folder.

    Args:
        resume: continue from `out_dir/last.pt`; `config` should be the run's own
            (`out_dir/config.yaml`), with only epochs or the time budget changed. A run stopped
            before its first epoch ended (a `config.yaml`, no `last.pt`) and a baseline (which
            trains in one go, deterministically) train again in place.
        overwrite: start over in a non-empty `out_dir`.
        on_epoch_end: see `fit` (networks only; a baseline trains in one go).
        rank: this process's place in distributed training, its process group set up
            (`workflow/launch.py`, or torchrun); rank 0 alone touches the run folder.
        init_from: a checkpoint (or run folder) of the same architecture to start from
            (`models/transfer.py`): matching layers are loaded, a changed class list gets a
            fresh head.
        adapt_bands: with `init_from`, accept other bands than the checkpoint's, adapting its
            first convolution; without it other bands are an error.

    Raises:
        OutputExistsError: `out_dir` is not empty and neither `resume` nor `overwrite` is set.
        DataError, LabelError, RasterError: the data folder cannot be used.
    """
    started = time.monotonic()
    run = RunFolder(Path(out_dir))
    if resume and config.model.name not in model_names():
        # A baseline trains in one go and is deterministic with its seed: training it again
        # in place ends where an uninterrupted run would.
        log.info("--resume: a %s trains in one go; training it again", config.model.name)
        resume, overwrite = False, True
    if init_from is not None and resume:
        raise ConfigError(
            "--init-from starts a new run from a checkpoint and --resume continues one; "
            "give only one."
        )
    if init_from is not None and config.model.name not in model_names():
        raise ConfigError(
            f"--init-from starts a network; a {config.model.name} trains in one go. "
            "Drop --init-from."
        )
    start = _Start(Path(init_from), adapt_bands) if init_from is not None else None
    if resume and not run.last.is_file() and run.config.is_file():
        # Stopped (even by SIGKILL) before its first epoch ended: nothing to continue, so the
        # run starts again in place, which ends exactly where an uninterrupted run would.
        log.warning("%s: no epoch finished before the run stopped; starting it again", run.path)
        resume, overwrite = False, True
    if rank is not None and config.model.name not in model_names():
        raise ConfigError(
            f"distributed training (--devices, torchrun) is for a network; a "
            f"{config.model.name} trains in one go in one process. Drop --devices."
        )
    if rank is not None and not rank.is_main:
        # The other ranks read the data (and last.pt) and step; they write nothing.
        return _train(
            config,
            data_dir,
            run,
            resume=resume,
            device=device or torch.device("cpu"),
            started=started,
            progress=False,
            on_epoch_end=None,
            rank=rank,
            start=start,
        )
    if resume and not run.last.is_file():
        run.prepare(resume=resume, overwrite=overwrite)  # refuses without creating the folder
    # One trainer per run folder: a second --resume or --overwrite stops here, naming the first.
    with folder_lock(run.path):
        run.prepare(resume=resume, overwrite=overwrite)
        return _train_locked(
            config,
            data_dir,
            run,
            resume=resume,
            device=device or torch.device("cpu"),
            started=started,
            progress=progress,
            on_epoch_end=on_epoch_end,
            rank=rank,
            start=start,
        )


def _train_locked(
    config: Config,
    data_dir: str | os.PathLike[str],
    run: RunFolder,
    *,
    resume: bool,
    device: torch.device,
    started: float,
    progress: bool,
    on_epoch_end: EpochCallback | None,
    rank: Rank | None,
    start: _Start | None,
) -> FitResult:
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
                on_epoch_end=on_epoch_end,
                rank=rank,
                start=start,
            )
    except BaseException:  # any failure before the first checkpoint leaves nothing to resume
        if not resume:
            run.remove_unfinished(resumable=config.model.name in model_names())
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
    on_epoch_end: EpochCallback | None,
    start: _Start | None,
    rank: Rank | None = None,
) -> FitResult:
    main = rank is None or rank.is_main
    where = f" (rank {rank.rank} of {rank.world_size})" if rank is not None else ""
    log.info(
        "training %s from %s into %s on %s%s",
        config.model.name,
        data_dir,
        run.path,
        device,
        where,
    )
    if not resume and main:
        run.write_config(config.to_yaml())
    network = config.model.name in model_names()
    scenes: list[Scene] | list[LazyScene]
    reading: dict[str, Any] = {
        "indices": config.data.indices,
        "labels": config.data.labels,
        "band_names": config.data.bands or None,
        "resolution": config.data.resolution,
        "coregister": config.data.coregister,
    }
    # A baseline fits every training pixel at once: its scenes are always in memory.
    if network and _streams(config, data_dir):
        scenes, classes = open_lazy_dataset(data_dir, **reading)
        if config.data.classes:
            scenes, classes = select_classes(scenes, classes, config.data.classes)
    else:
        scenes, classes = load_dataset(data_dir, **reading)
        if config.data.classes:
            scenes, classes = select_classes(scenes, classes, config.data.classes)
    names, shapes = [s.name for s in scenes], [s.shape for s in scenes]
    areas = held_out_areas(names, shapes, settings=config.data.split, seed=config.train.seed)
    if main:
        run.write_split(split_record(names, shapes, areas))
    if network:
        config = choose_head(config, scenes)
        if not resume and main:
            run.write_config(config.to_yaml())  # with the head chosen, which a resume keeps
        return _train_network(
            config,
            scenes,
            classes,
            run,
            resume=resume,
            device=device,
            started=started,
            progress=progress,
            on_epoch_end=on_epoch_end,
            rank=rank,
            start=start,
        )
    return _train_baseline(config, [s for s in scenes if isinstance(s, Scene)], classes, run)


def _streams(config: Config, data_dir: str | os.PathLike[str]) -> bool:
    """Whether a network's training scenes are read window by window (`data/streaming.py`);
    the choice and its reason go to the log."""
    mode = config.data.streaming
    if mode == "never":
        log.info("training data in memory: data.streaming is never")
        return False
    shapes, bands, num_classes = labelled_scene_shapes(
        data_dir,
        labels=config.data.labels,
        band_names=config.data.bands or None,
        resolution=config.data.resolution,
    )
    channels = bands + len(config.data.indices.names)
    estimated = in_memory_bytes(shapes, channels, num_classes)
    stream, why = choose_streaming(
        mode, estimated, memory_budget_bytes(config.data.memory_budget_gb)
    )
    log.info("training data %s", why)
    return stream


def _training_data(
    config: Config,
    scenes: Sequence[Scene | LazyScene],
    *,
    size_multiple: int,
    stats: BandStats | None,
) -> TrainingData:
    """Patches and validation windows, from scenes in memory or from lazy scenes."""
    common: dict[str, Any] = {
        "data": config.data,
        "sampling": config.sampling,
        "augment_settings": config.augment,
        "size_multiple": size_multiple,
        "patches_per_epoch": config.train.patches_per_epoch,
        "seed": config.train.seed,
        "stats": stats,
        "scored_margin_px": config.train.centre_crop_px,
    }
    lazy = [s for s in scenes if isinstance(s, LazyScene)]
    if lazy:
        return prepare_streamed_training_data(lazy, **common)
    return prepare_training_data([s for s in scenes if isinstance(s, Scene)], **common)


def _train_network(
    config: Config,
    scenes: Sequence[Scene | LazyScene],
    classes: ClassList,
    run: RunFolder,
    *,
    resume: bool,
    device: torch.device,
    started: float,
    progress: bool,
    on_epoch_end: EpochCallback | None,
    rank: Rank | None,
    start: _Start | None,
) -> FitResult:
    settings = config.model.chosen()
    head: Head = getattr(settings, "head", "sigmoid")
    main = rank is None or rank.is_main
    saved = load_checkpoint(run.last) if resume else None
    if saved is not None and saved.training_state is None:
        raise CheckpointError(f"{run.last}: holds no training state to resume from.")
    torch.manual_seed(config.train.seed)
    in_channels = scenes[0].num_bands
    model = build_model(config.model.name, in_channels, len(classes.classes), settings)
    encoder = _pretrained_encoder(model, config, scenes[0].band_names, fresh=saved is None)
    if start is not None:
        _start_from(model, start, config, scenes[0].band_names, classes.names)
    size_multiple = int(getattr(model, "size_multiple", 1))
    stats = BandStats.from_dict(saved.card.normalization.stats) if saved is not None else None
    data = _training_data(config, scenes, size_multiple=size_multiple, stats=stats)
    template = _checkpoint_template(
        config,
        scenes,
        classes,
        data,
        in_channels=in_channels,
        model_settings=settings.model_dump(mode="json"),
        head=head,
        size_multiple=size_multiple,
    )
    resume_state: dict[str, Any] | None = None
    if saved is not None and saved.training_state is not None:
        model.load_state_dict(saved.weights)
        resume_state = dict(saved.training_state)
        if run.best.is_file():
            resume_state["best_weights"] = load_checkpoint(run.best).weights
        if main:
            log.info("resuming %s after epoch %d", run.path, saved.epoch)
    result = fit(
        model,
        data.train,
        data.validation,
        settings=config.train,
        loss_fn=build_loss(config.loss, head),
        head=head,
        device=device,
        class_names=classes.names,
        size_multiple=size_multiple,
        checkpoint=template,
        run=run if main else None,
        resume=resume_state,
        started=started,
        progress=progress,
        on_epoch_end=on_epoch_end,
        rank=rank,
        frozen=encoder,
        frozen_epochs=config.model.encoder.freeze_epochs,
    )
    if main:
        _record_prediction_cost(model, result, data, run, head=head, multiple=size_multiple)
    return result


@dataclass(frozen=True)
class _Start:
    """`--init-from CKPT [--adapt-bands]`: the checkpoint a new run starts from."""

    checkpoint: Path
    adapt_bands: bool


def _start_from(
    model: torch.nn.Module,
    start: _Start,
    config: Config,
    channels: Sequence[str],
    class_names: Sequence[str],
) -> None:
    """Load the matching layers of `start.checkpoint` into `model` (`models/transfer.py`).

    Raises:
        ConfigError: the checkpoint is another architecture, or has other bands without
            `--adapt-bands`.
    """
    source = load_checkpoint(start.checkpoint)
    card = source.card
    where = f"--init-from {start.checkpoint}"
    if card.model != config.model.name:
        raise ConfigError(
            f"{where}: a {card.model} checkpoint cannot start a {config.model.name}; set "
            f"model.name={card.model} or start from a {config.model.name} checkpoint."
        )
    if tuple(card.channel_names) != tuple(channels) and not start.adapt_bands:
        raise ConfigError(
            f"{where}: the checkpoint was trained on {', '.join(card.channel_names)} but the "
            f"data has {', '.join(channels)}; pass --adapt-bands to copy the filters of the "
            "bands both have and start the others from their mean."
        )
    same_classes = tuple(card.class_names) == tuple(class_names)
    transfer = transfer_weights(
        model,
        source.weights,
        source_channels=card.channel_names,
        channels=channels,
        same_classes=same_classes,
    )
    model.load_state_dict(transfer.weights, strict=False)
    log.info(
        "started from %s: %d tensors loaded, %d fresh%s",
        start.checkpoint,
        len(transfer.weights),
        len(transfer.fresh),
        "" if same_classes else " (new classes: fresh head)",
    )


def _pretrained_encoder(
    model: torch.nn.Module, config: Config, channel_names: Sequence[str], *, fresh: bool
) -> torch.nn.Module | None:
    """The model's ResNet encoder, filled from `model.encoder.weights` on a fresh start (a
    resumed run has its own weights); None for models without one (`model.encoder` ignored)."""
    settings = config.model.encoder
    encoder = getattr(model, "encoder", None)
    if not isinstance(encoder, ResNetEncoder):
        if settings != EncoderSettings():
            log.warning(
                "model.encoder is ignored: model %s has no pretrainable encoder", config.model.name
            )
        return None
    if fresh and settings.weights is not None:
        state = read_state_dict(settings.weights)
        load_encoder_weights(
            encoder, state, channel_names=channel_names, source=str(settings.weights)
        )
        log.info("encoder weights from %s", settings.weights)
    return encoder


def _record_prediction_cost(
    model: torch.nn.Module,
    result: FitResult,
    data: TrainingData,
    run: RunFolder,
    *,
    head: Head,
    multiple: int,
) -> None:
    """Measure the best weights' edge margin and TTA Jaccard and store them in `best.pt`, so
    that prediction overlaps and augments no more than the model needs (docs/prediction.md)."""
    # Prediction's own measurement; imported here as the run orchestration sits above it.
    from spectraseg.predict.model_cost import measure_prediction_cost

    if not run.best.is_file() or not result.best_weights:
        return
    model.load_state_dict(result.best_weights)
    cost = measure_prediction_cost(
        model, data.validation, head=head, size_multiple=multiple, thresholds=result.thresholds
    )
    best = load_checkpoint(run.best)
    save_checkpoint(
        run.best,
        best.with_card(edge_margin_px=cost.edge_margin_px, tta_jaccard=cost.tta_jaccard),
    )


class _PixelModel(Protocol):
    """What the baselines share: probabilities of a whole image, and plain arrays to save."""

    def predict_image(self, image: np.ndarray) -> np.ndarray: ...

    def to_arrays(self) -> dict[str, np.ndarray]: ...


def _train_baseline(
    config: Config, scenes: Sequence[Scene], classes: ClassList, run: RunFolder
) -> FitResult:
    """A per-pixel baseline, on the same split, bands, indices and normalization as a network."""
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
    state = FitState(
        epoch=1,
        seconds=time.monotonic() - started,
        best_score=score,
        best_epoch=1,
        thresholds=tuple(float(t) for t in thresholds),
    )
    state.history.append(
        history_row(
            state,
            evaluation,
            train_loss=math.nan,
            rate=math.nan,
            tuned_score=mean_over_present(tuned),
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
        size_multiple=1,
    )
    # np.array copies (0-d arrays stay 0-d, unlike ascontiguousarray): tensors own their data.
    weights = {key: torch.from_numpy(np.array(value)) for key, value in model.to_arrays().items()}
    finished = filled_checkpoint(template, weights, state, epoch=1)
    save_checkpoint(run.best, finished)
    save_checkpoint(run.last, finished)
    run.write_history(state.history)
    run.write_curves(state.history, classes.names)
    log.info(
        "%s: validation mean Jaccard %.3f (tuned %.3f)",
        config.model.name,
        score,
        mean_over_present(tuned),
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
