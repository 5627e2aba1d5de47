"""A training run's validation scenes, as a report shows them: the validation windows of the
run's own split predicted again with its best checkpoint, and scored as `evaluate` scores.

The split is the run's (same data settings, patch size and seed give the same windows), so the
table matches what training reported. The scenes are in memory, as they were for training;
only the previews are downsampled.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from spectraseg.config import Config, load_config
from spectraseg.data.catalog import load_dataset, select_classes
from spectraseg.data.split import split_scenes
from spectraseg.evaluate.scores import Evaluation, score_scene
from spectraseg.evaluate.tables import scores_document
from spectraseg.predict.outputs import make_mask
from spectraseg.report.collect import RunFacts, search_figures
from spectraseg.report.composite import choose_composite, preview_shape, stretch
from spectraseg.report.reading import DEFAULT_MAX_PIXELS
from spectraseg.report.sources import ReportSource, SceneView, ThresholdCurves
from spectraseg.train.checkpoint import Checkpoint, load_checkpoint
from spectraseg.train.metrics import ThresholdSweep
from spectraseg.train.predictor import build_predictor

__all__ = ["validation_source"]

log = logging.getLogger(__name__)


def _run_config(folder: Path, checkpoint: Checkpoint) -> Config:
    if (folder / "config.yaml").is_file():
        return load_config(folder / "config.yaml")
    return Config.model_validate(checkpoint.config)


def _masks(probs: np.ndarray, checkpoint: Checkpoint) -> np.ndarray:
    """(K, H, W) bool as `predict` makes masks: tuned thresholds, or the most probable class."""
    ids = make_mask(
        probs, checkpoint.thresholds, "softmax" if checkpoint.head == "softmax" else "sigmoid"
    )
    if checkpoint.head == "softmax":
        return np.asarray(ids == np.arange(probs.shape[0]).reshape(-1, 1, 1))
    return np.asarray(ids == 1)


def _sample(array: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return np.asarray(array[..., rows, :][..., cols])


def validation_source(
    folder: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    *,
    label: str | None = None,
    device: torch.device | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ReportSource:
    """The run folder's history and settings with its validation scenes and their scores."""
    run = Path(folder)
    checkpoint = load_checkpoint(run / "best.pt")
    config = _run_config(run, checkpoint)
    scenes, classes = load_dataset(
        data_dir,
        indices=config.data.indices,
        labels=config.data.labels,
        band_names=config.data.bands or None,
        resolution=config.data.resolution,
        coregister=config.data.coregister,
    )
    if config.data.classes:
        scenes, classes = select_classes(scenes, classes, config.data.classes)
    split = split_scenes(
        [s.name for s in scenes],
        [~s.ignored() for s in scenes],
        patch_size=checkpoint.patch_size,
        settings=config.data.split,
        seed=config.train.seed,
    )
    predictor = build_predictor(checkpoint, device or torch.device("cpu"))
    raw_bands = len(checkpoint.band_names)
    chosen, caption = choose_composite(checkpoint.band_names)
    names = checkpoint.class_names
    sweep = ThresholdSweep(len(names))
    scored, views = [], []
    for index in sorted({w.scene for w in split.windows}):
        scene = scenes[index]
        probs = np.full((len(names), *scene.shape), np.nan, dtype=np.float32)
        region = np.zeros(scene.shape, dtype=bool)
        for window in (w for w in split.windows if w.scene == index):
            rows, cols = window.slices
            raw = np.where(scene.valid[rows, cols], scene.image[:raw_bands, rows, cols], np.nan)
            with torch.no_grad():
                batch = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32)[None])
                probs[:, rows, cols] = predictor(batch)[0].cpu().numpy()
            region[rows, cols] = True
        assert scene.mask is not None
        ignore = scene.ignored() | ~region
        predicted = _masks(probs, checkpoint) & region[None]
        scored.append(
            score_scene(
                scene.name, predicted, scene.mask, ignore, multiclass=checkpoint.head == "softmax"
            )
        )
        if checkpoint.head != "softmax":
            sweep.add(np.nan_to_num(probs), scene.mask, ignore)
        height, width = preview_shape(*scene.shape, max_pixels)
        rows_at = np.linspace(0, scene.shape[0] - 1, height).round().astype(int)
        cols_at = np.linspace(0, scene.shape[1] - 1, width).round().astype(int)
        image = _sample(scene.image[list(chosen)], rows_at, cols_at)
        views.append(
            SceneView(
                name=scene.name,
                composite=stretch(image, _sample(scene.valid, rows_at, cols_at)),
                caption=caption,
                predicted=_sample(predicted, rows_at, cols_at),
                truth=_sample(scene.mask, rows_at, cols_at),
                ignore=_sample(ignore, rows_at, cols_at),
                shape=scene.shape,
            )
        )
    evaluation = Evaluation(names, tuple(scored))
    curves = None
    if checkpoint.head != "softmax":
        jaccard = np.stack([sweep.counts_at(float(t)).jaccard() for t in sweep.thresholds], axis=1)
        curves = ThresholdCurves(sweep.thresholds, jaccard, tuple(checkpoint.thresholds))
    facts = RunFacts(run)
    sources = {
        "prediction": f"validation windows of {run}",
        "truth": str(data_dir),
        "run": str(run),
    }
    return ReportSource(
        label=label or run.name,
        folder=run,
        class_names=names,
        class_colours=tuple(classes.colours[classes.index_of(n)] for n in names),
        scores=scores_document(evaluation, sources=sources),
        history=facts.history,
        scenes=tuple(views),
        thresholds=curves,
        search_figures=search_figures(run),
        settings=facts.settings,
        provenance={**facts.provenance, "validation data": str(data_dir)},
    )
