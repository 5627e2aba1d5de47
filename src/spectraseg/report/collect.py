"""Folders → `ReportSource`s: what each kind of output folder holds that a report can show.

    evaluation folder (scores.json)   scores; scenes from its `sources` (prediction, truth, run)
    training run folder (best.pt)     history, settings, provenance; with `data`, its validation
                                      windows predicted again (`validation.py`)
    `spectraseg run` folder           one source per model: its scores/<label>/ evaluation
      (manifest.json)                 with the test scenes' images, or its models/<label>/ run

Whatever is missing is left out: an evaluation without its run has no training curves, a
prediction without probabilities no threshold curves, a scene without its image is drawn on grey.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from spectraseg.classes import ClassList, ClassSpec
from spectraseg.data.catalog import find_scenes
from spectraseg.errors import DataError, SpectrasegError
from spectraseg.evaluate.matching import (
    find_classes_file,
    find_predictions,
    pair_scenes,
    with_truth_values,
)
from spectraseg.io.classes_file import load_classes
from spectraseg.report.reading import DEFAULT_MAX_PIXELS, read_scene_view
from spectraseg.report.sources import ReportSource, SceneView, ThresholdCurves
from spectraseg.train.metrics import ThresholdSweep

__all__ = ["MAX_SCENES", "collect_sources", "read_history"]

log = logging.getLogger(__name__)

# Scenes shown per source: a report is for looking, and twelve scenes already fill a screen.
MAX_SCENES = 6
MANIFEST = "manifest.json"
SCORES = "scores.json"


def read_history(path: Path) -> list[dict[str, str]] | None:
    """history.csv rows as text, or None when the file is absent or empty."""
    if not path.is_file():
        return None
    with path.open(encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    return rows or None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: cannot read it as JSON ({error}).") from None
    if not isinstance(document, dict):
        raise DataError(f"{path}: expected a JSON object.")
    return document


class RunFacts:
    """What a training run folder says about its model (its checkpoint loaded once)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.history = read_history(folder / "history.csv") if folder else None
        self.settings: dict[str, Any] | None = None
        self.provenance: dict[str, str] = {}
        self.band_names: tuple[str, ...] = ()
        self.class_names: tuple[str, ...] = ()
        self.colours: tuple[tuple[int, int, int], ...] = ()
        self.thresholds: tuple[float, ...] | None = None
        if folder is None or not (folder / "best.pt").is_file():
            if folder is not None and (folder / "config.yaml").is_file():
                text = (folder / "config.yaml").read_text(encoding="utf-8")
                self.settings = yaml.safe_load(text)
            if folder is not None:
                self._read_ensemble(folder)
            return
        from spectraseg.train.checkpoint import load_checkpoint  # torch: only for a run

        checkpoint = load_checkpoint(folder / "best.pt")
        card = checkpoint.card
        self.settings = checkpoint.config
        self.band_names = card.band_names
        self.class_names = card.class_names
        self.colours = card.class_colours
        self.thresholds = card.thresholds
        self.provenance = {
            "model": checkpoint.card.model,
            "run folder": str(folder),
            "bands": ", ".join(card.band_names)
            + (f" + {', '.join(card.indices.names)}" if card.indices.names else ""),
            "best epoch": f"{checkpoint.epoch} "
            f"(validation mean Jaccard {checkpoint.best_score:.4f})",
            "thresholds": ", ".join(
                f"{n} {t:.2f}" for n, t in zip(card.class_names, card.thresholds, strict=False)
            ),
            "seed": str(checkpoint.seed),
            "versions": ", ".join(f"{k} {v}" for k, v in sorted(checkpoint.versions.items())),
            "git commit": checkpoint.git_commit or "unknown",
        }
        if self.history:
            last = self.history[-1]
            self.provenance["training time"] = (
                f"{last.get('seconds', '?')} s, {len(self.history)} epochs"
            )

    def _read_ensemble(self, folder: Path) -> None:
        """A folder of per-class models: the one card their ensemble.yaml presents."""
        from spectraseg.predict.ensemble import ensemble_file  # torch: only for a run
        from spectraseg.predict.load_model import load_card

        ensemble = ensemble_file(folder)
        if ensemble is None:
            return
        card = load_card(ensemble)
        self.band_names = card.band_names
        self.class_names = card.class_names
        self.colours = card.class_colours
        self.thresholds = card.thresholds
        self.provenance = {
            "model": f"ensemble ({ensemble})",
            "run folder": str(folder),
            "thresholds": ", ".join(
                f"{n} {t:.2f}" for n, t in zip(card.class_names, card.thresholds, strict=False)
            ),
        }

    def classes(self) -> ClassList | None:
        if not self.class_names:
            return None
        specs = (
            ClassSpec(name=n, id=i + 1, colour=c)
            for i, (n, c) in enumerate(zip(self.class_names, self.colours, strict=True))
        )
        return ClassList(classes=tuple(specs))


def _scene_images(folders: Sequence[Path]) -> dict[str, tuple[Path, ...]]:
    """Scene name → image files, from the first of `folders` that is a data folder."""
    for folder in folders:
        if not (folder / "images").is_dir() and not (folder / "three_band").is_dir():
            continue
        try:
            return {source.name: source.images for source in find_scenes(folder)}
        except SpectrasegError as error:
            log.info("no images for the report in %s: %s", folder, error)
    return {}


def _classes_for(
    truth: Path,
    classes_file: str | None,
    facts: RunFacts,
    names: Sequence[str],
    column: str,
) -> ClassList:
    found = Path(classes_file) if classes_file else find_classes_file(truth)
    if found is not None and found.is_file():
        return load_classes(found)
    known = facts.classes() or ClassList(
        classes=tuple(ClassSpec(name=n, id=i + 1) for i, n in enumerate(names))
    )
    return with_truth_values(known, truth, column)


def _curves(
    probs: Sequence[np.ndarray],
    views: Sequence[SceneView],
    chosen: Sequence[float],
) -> ThresholdCurves | None:
    """Jaccard against threshold over the previews' pixels of every scene with probabilities."""
    if not probs:
        return None
    sweep = ThresholdSweep(views[0].truth.shape[0])
    for scene_probs, view in zip(probs, views, strict=True):
        ignore = view.ignore | np.isnan(scene_probs).any(axis=0)
        sweep.add(np.nan_to_num(scene_probs), view.truth, ignore)
    jaccard = np.stack([sweep.counts_at(float(t)).jaccard() for t in sweep.thresholds], axis=1)
    return ThresholdCurves(sweep.thresholds, jaccard, tuple(float(t) for t in chosen))


def evaluation_source(
    folder: Path,
    *,
    label: str | None = None,
    images: Sequence[Path] = (),
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ReportSource:
    """An evaluation folder (scores.json) with the scenes its `sources` name, where they exist."""
    scores = _read_json(folder / SCORES)
    sources = scores.get("sources") or {}
    run = Path(sources["run"]) if sources.get("run") else None
    facts = RunFacts(run if run is not None and run.is_dir() else None)
    names = tuple(scores.get("classes") or facts.class_names)
    views: list[SceneView] = []
    probs: list[np.ndarray] = []
    chosen: Sequence[float] = ()
    classes: ClassList | None = None
    prediction, truth = sources.get("prediction"), sources.get("truth")
    if prediction and truth and Path(prediction).exists() and Path(truth).exists():
        truth_path = Path(truth)
        column = sources.get("class_column") or "class"
        classes = _classes_for(truth_path, sources.get("classes_file"), facts, names, column)
        near = truth_path if truth_path.is_dir() else truth_path.parent
        found = _scene_images([*images, near, near.parent])
        with_probs = find_predictions(prediction, prefer_mask=False)
        for pair in pair_scenes(prediction, truth)[:MAX_SCENES]:
            source = with_probs.get(pair.name, pair.prediction)
            view, scene_probs = read_scene_view(
                pair.name,
                source,
                pair.truth,
                classes,
                images=found.get(pair.name, ()),
                band_names=facts.band_names,
                thresholds=facts.thresholds,
                max_pixels=max_pixels,
                column=column,
            )
            views.append(view)
            if scene_probs is not None and scene_probs.shape[0] == len(names):
                probs.append(scene_probs)
                chosen = _chosen(source, facts.thresholds, len(names))
    colours = _colours(names, classes, facts)
    curves = _curves(probs, views, chosen) if len(probs) == len(views) and probs else None
    return ReportSource(
        label=label or folder.name,
        folder=folder,
        class_names=names,
        class_colours=colours,
        scores=scores,
        history=facts.history,
        scenes=tuple(views),
        thresholds=curves,
        search_figures=search_figures(run),
        settings=facts.settings,
        provenance={
            **facts.provenance,
            **{f"{k} (evaluated)": str(v) for k, v in sources.items() if v},
        },
    )


def _chosen(path: Path, tuned: Sequence[float] | None, count: int) -> Sequence[float]:
    from spectraseg.io.prediction_raster import PredictionRaster

    with PredictionRaster(path) as raster:
        found = raster.info.tuned_thresholds
    return found or (tuple(tuned) if tuned and len(tuned) == count else (0.5,) * count)


def _colours(
    names: Sequence[str], classes: ClassList | None, facts: RunFacts
) -> tuple[tuple[int, int, int], ...]:
    for known_names, colours in (
        (classes.names if classes else (), classes.colours if classes else ()),
        (facts.class_names, facts.colours),
    ):
        if all(n in known_names for n in names):
            return tuple(colours[list(known_names).index(n)] for n in names)
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    return tuple(
        tuple(int(255 * c) for c in palette(i % 10)[:3])  # type: ignore[misc]
        for i in range(len(names))
    )


def search_figures(run: Path | None) -> tuple[Path, ...]:
    """The PNG figures of the search a run came from (`spectraseg search --show`)."""
    if run is None:
        return ()
    candidates = [run / "search", run.parent / "search", run.parent.parent / "search"]
    for folder in candidates:
        figures = sorted((folder / "figures").glob("*/*.png")) if folder.is_dir() else []
        if figures:
            return tuple(figures)
    return ()


def run_source(
    folder: Path,
    *,
    label: str | None = None,
    data: Path | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> ReportSource:
    """A training run folder: its history and settings, and with `data` its validation scenes."""
    if data is not None:
        from spectraseg.report.validation import validation_source

        return validation_source(folder, data, label=label, max_pixels=max_pixels)
    facts = RunFacts(folder)
    names = facts.class_names
    return ReportSource(
        label=label or folder.name,
        folder=folder,
        class_names=names,
        class_colours=facts.colours,
        history=facts.history,
        search_figures=search_figures(folder),
        settings=facts.settings,
        provenance=facts.provenance,
    )


def pipeline_sources(
    folder: Path,
    *,
    labels: Sequence[str] | None = None,
    test: Sequence[Path] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[ReportSource]:
    """One source per model of a `spectraseg run` folder, in the config's order.

    Args:
        labels, test: the models and the test data folder; default: the manifest's config.
    """
    if labels is None or test is None:
        config = _read_json(folder / MANIFEST).get("config") or {}
        run = config.get("run") or {}
        labels = list(run.get("models") or {}) if labels is None else labels
        test = ([Path(run["test"])] if run.get("test") else []) if test is None else test
    stages = _stage_times(folder / MANIFEST)
    found: list[ReportSource] = []
    for label in labels:
        scores = folder / "scores" / label
        source: ReportSource | None = None
        if (scores / SCORES).is_file():
            source = evaluation_source(scores, label=label, images=test, max_pixels=max_pixels)
        elif (folder / "models" / label).is_dir():
            source = run_source(folder / "models" / label, label=label)
        if source is not None:
            times = ", ".join(f"{k} {v:.1f} s" for k, v in stages.get(label, {}).items())
            if times:
                source.provenance["stage times"] = times
            found.append(source)
    return found


def _stage_times(manifest: Path) -> dict[str, dict[str, float]]:
    """Label → stage kind → seconds, from a run's manifest (empty when there is none yet)."""
    if not manifest.is_file():
        return {}
    times: dict[str, dict[str, float]] = {}
    for name, record in (_read_json(manifest).get("stages") or {}).items():
        kind, _, label = name.partition(":")
        if label and isinstance(record, dict) and record.get("seconds") is not None:
            times.setdefault(label, {})[kind] = float(record["seconds"])
    return times


def collect_sources(
    folders: Sequence[str | Path],
    *,
    data: Path | None = None,
    images: Sequence[Path] = (),
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[ReportSource]:
    """Every source of the given folders, in order, each labelled uniquely.

    Raises:
        DataError: a folder that is none of the kinds the report reads.
    """
    found: list[ReportSource] = []
    for given in folders:
        folder = Path(given)
        if (folder / MANIFEST).is_file():
            found += pipeline_sources(folder, max_pixels=max_pixels)
        elif (folder / SCORES).is_file():
            found.append(evaluation_source(folder, images=images, max_pixels=max_pixels))
        elif (folder / "best.pt").is_file() or (folder / "history.csv").is_file():
            found.append(run_source(folder, data=data, max_pixels=max_pixels))
        else:
            raise DataError(
                f"{folder}: not a run or evaluation folder (no {MANIFEST}, {SCORES}, best.pt "
                "or history.csv); give a `spectraseg train`, `evaluate` or `run` output folder."
            )
    return _unique_labels(found)


def _unique_labels(sources: list[ReportSource]) -> list[ReportSource]:
    from dataclasses import replace

    seen: dict[str, int] = {}
    unique = []
    for source in sources:
        label = source.label
        if label in seen:
            label = f"{source.folder.parent.name}/{source.folder.name}"
        if label in seen:
            label = f"{source.label} ({seen[source.label] + 1})"
        seen[source.label] = seen.get(source.label, 0) + 1
        seen.setdefault(label, 1)
        unique.append(replace(source, label=label))
    return unique
