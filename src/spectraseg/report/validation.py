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
import yaml

from spectraseg.data.catalog import labelled_scene_shapes, load_dataset, select_classes
from spectraseg.data.settings import DataSettings
from spectraseg.data.split import split_scenes
from spectraseg.data.streaming import in_memory_bytes, memory_budget_bytes
from spectraseg.errors import DataError
from spectraseg.evaluate.scores import Evaluation, score_scene
from spectraseg.evaluate.tables import scores_document
from spectraseg.models.head import class_masks
from spectraseg.predict.predictor import build_predictor
from spectraseg.report.collect import RunFacts, search_figures
from spectraseg.report.composite import choose_composite, preview_shape, stretch
from spectraseg.report.reading import DEFAULT_MAX_PIXELS
from spectraseg.report.sources import ReportSource, SceneView, ThresholdCurves
from spectraseg.train.checkpoint import Checkpoint, load_checkpoint
from spectraseg.train.metrics import ThresholdSweep

__all__ = ["validation_source"]

log = logging.getLogger(__name__)


def _run_sections(folder: Path, checkpoint: Checkpoint) -> tuple[DataSettings, int]:
    """The run's data settings and seed: what decides its split (from its config.yaml)."""
    config = checkpoint.config
    if (folder / "config.yaml").is_file():
        config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8")) or {}
    data = DataSettings.model_validate(config.get("data") or {})
    return data, int((config.get("train") or {}).get("seed", checkpoint.seed))


def _check_fits_memory(data: DataSettings, data_dir: str | os.PathLike[str]) -> None:
    """A `DataError` rather than a machine out of memory: the report reads the scenes whole,
    which a training set streamed for its size (`data/streaming.py`) would not survive."""
    shapes, bands, num_classes = labelled_scene_shapes(
        data_dir,
        labels=data.labels,
        band_names=data.bands or None,
        resolution=data.resolution,
    )
    estimated = in_memory_bytes(shapes, bands + len(data.indices.names), num_classes)
    budget = memory_budget_bytes(data.memory_budget_gb)
    if data.streaming != "never" and budget is not None and estimated > budget:
        raise DataError(
            f"{data_dir}: the report reads the scenes whole, {estimated / 1e9:.1f} GB, over the "
            f"{budget / 1e9:.1f} GB memory budget (a streamed training set); predict and "
            "evaluate the held-out scenes instead (spectraseg evaluate --split RUN_DIR)."
        )


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
    card = checkpoint.card
    data, seed = _run_sections(run, checkpoint)
    _check_fits_memory(data, data_dir)
    scenes, classes = load_dataset(
        data_dir,
        indices=data.indices,
        labels=data.labels,
        band_names=data.bands or None,
        resolution=data.resolution,
        coregister=data.coregister,
    )
    if data.classes:
        scenes, classes = select_classes(scenes, classes, data.classes)
    split = split_scenes(
        [s.name for s in scenes],
        [~s.ignored() for s in scenes],
        patch_size=card.patch_px,
        settings=data.split,
        seed=seed,
    )
    predictor = build_predictor(checkpoint, device or torch.device("cpu"))
    raw_bands = len(card.band_names)
    chosen, caption = choose_composite(card.band_names)
    names = card.class_names
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
        predicted = class_masks(probs, card.thresholds, card.head) & region[None]
        scored.append(
            score_scene(
                scene.name, predicted, scene.mask, ignore, multiclass=card.head == "softmax"
            )
        )
        if card.head != "softmax":
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
    if card.head != "softmax":
        jaccard = np.stack([sweep.counts_at(float(t)).jaccard() for t in sweep.thresholds], axis=1)
        curves = ThresholdCurves(sweep.thresholds, jaccard, tuple(card.thresholds))
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
