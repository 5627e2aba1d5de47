"""The stages of `spectraseg run`, each one call of the library on the run's settings.

A stage is declared by what its result depends on (`depends`: settings and the fingerprints of
the stages it reads) and what it does (`action`, returning its outputs and a one-line summary).
The runner (`pipeline/runner.py`) decides from the manifest which stages to run; a stage never
looks at the manifest itself, so each reads top to bottom as the step a user would type.

Layout of the run folder::

    RUN/manifest.json  config.yaml  run.log  scores.json  scores.csv  report.html
    RUN/prepare/data.json  classes.yaml         scenes and classes found
    RUN/prepare/truth/<scene>.tif  classes.yaml  the scored scenes' truth (255: not scored)
    RUN/search/                                the study, best.yaml (when `run.search` is set)
    RUN/models/<label>/                        a training run folder (best.pt, last.pt, ...);
                                               per_class: classes/<name>/ and ensemble.yaml
    RUN/predictions/<label>/<scene>_probs.tif  _mask.tif  _classes.tif  <scene>.geojson
    RUN/scores/<label>/scores.json  scores.csv
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spectraseg.classes import ClassList
from spectraseg.config import Config, given_keys
from spectraseg.data.catalog import (
    CLASSES_FILE,
    SceneSource,
    data_classes,
    find_scenes,
    select_classes,
)
from spectraseg.errors import ConfigError, DataError
from spectraseg.io.atomic import write_text_atomic
from spectraseg.io.classes_file import load_classes, save_classes
from spectraseg.models.registry import model_names
from spectraseg.pipeline.settings import model_config
from spectraseg.predict.choices import PredictRequest, request_from_config
from spectraseg.predict.settings import PredictSettings

__all__ = ["STAGE_KINDS", "RunContext", "Stage", "plan_stages", "report_path", "scores_path"]

log = logging.getLogger(__name__)

# The order stages run in; `--from` and `--until` name these.
TRUTH_IGNORE = 255
HELD_OUT_STRIP_ROWS = 512
"""Rows of a scene read and written at a time for the held-out truth (a 20000 px wide scene of
13 bands: about 0.5 GB of float32 pixels per strip)."""

STAGE_KINDS = ("prepare", "search", "train", "predict", "postprocess", "evaluate", "report")


@dataclass
class RunContext:
    """What every stage may read: the run's config and folder, and how to run."""

    config: Config
    out: Path
    device: torch.device
    progress: bool
    training_inputs: str = ""
    """The fingerprint of the training data's files."""
    test_inputs: str = ""
    """The fingerprint of the test scenes' and inference rasters' files."""
    resuming: bool = False
    """The stage about to run was cut off last time with the same settings: continue it."""
    given: frozenset[str] = frozenset()
    """The dotted keys the config file and `--set` wrote: of `predict:`, only these are
    requests; the rest comes from each model's card, as in `spectraseg predict`."""

    def predict_request(self, label: str) -> tuple[PredictSettings, PredictRequest]:
        """The predict settings of one model (its `set` included) and what they request."""
        entry = self.config.run.models[label]
        given = self.given | given_keys(None, entry.set)
        settings = model_config(self.config, label).predict
        return settings, request_from_config(settings, given)


Outcome = tuple[list[Path], str]


@dataclass(frozen=True)
class Stage:
    """One step of the run: `kind` (as `--from` names it), `name` (unique), and its work.

    `depends` holds the settings its result depends on and `after` the stages whose results it
    reads: its fingerprint hashes both, so a change anywhere upstream reaches it.
    """

    kind: str
    name: str
    depends: dict[str, Any]
    action: Callable[[RunContext], Outcome]
    after: tuple[str, ...] = ()


# --- the data -------------------------------------------------------------------------------


def _scene_summary(source: SceneSource) -> dict[str, Any]:
    return {
        "name": source.name,
        "images": [str(p) for p in source.images],
        "labels": str(source.labels or source.mask or (source.dstl[0] if source.dstl else "")),
    }


def _test_sources(config: Config) -> list[SceneSource]:
    test = config.run.test
    return find_scenes(test, config.data.labels) if test is not None else []


def _training_classes(config: Config) -> ClassList:
    data = config.run.data
    assert data is not None
    return data_classes(data, find_scenes(data, config.data.labels), config.data.labels)


def prepare(context: RunContext) -> Outcome:
    """Check that every named input is usable before any long stage starts, and list it."""
    run = context.config.run
    assert run.data is not None
    sources = find_scenes(run.data, context.config.data.labels)
    labelled = [s for s in sources if s.has_labels]
    if not labelled:
        raise DataError(f"{run.data}: no scene has labels; nothing to train on.")
    classes = data_classes(run.data, sources, context.config.data.labels)
    tests = _test_sources(context.config)
    for raster in run.inference:
        if not raster.exists():
            raise ConfigError(f"run.inference: {raster}: no such raster.")
    summary = {
        "data": str(run.data),
        "classes": [{"name": c.name, "id": c.id} for c in classes.classes],
        "training_scenes": [_scene_summary(s) for s in labelled],
        "test_scenes": [_scene_summary(s) for s in tests],
        "inference": [str(p) for p in run.inference],
    }
    target = context.out / "prepare" / "data.json"
    write_text_atomic(target, json.dumps(summary, indent=2) + "\n")
    # The class list as used, to copy and edit when it was read from the labels' values.
    classes_file = context.out / "prepare" / CLASSES_FILE
    save_classes(classes, classes_file)
    text = (
        f"{len(labelled)} training scenes, {len(tests)} test scenes, {len(classes.classes)} classes"
    )
    return [target, classes_file], text


def prepare_truth(context: RunContext) -> Outcome:
    """Each test scene's labels rasterized on its grid, whatever their form (polygons, DSTL WKT,
    masks): one per-class mask each, 255 where unlabelled, so evaluation reads one layout."""
    from spectraseg.data.catalog import load_scene
    from spectraseg.io.geotiff import write_raster

    test = context.config.run.test
    assert test is not None
    listed = test / CLASSES_FILE
    classes = load_classes(listed) if listed.is_file() else _training_classes(context.config)
    folder = truth_dir(context.out)
    outputs: list[Path] = []
    for source in _test_sources(context.config):
        if not source.has_labels:
            log.warning(
                "%s: test scene %s has no labels; it is predicted, not scored", test, source.name
            )
            continue
        data = context.config.data
        scene = load_scene(
            source,
            classes,
            labels=data.labels,
            band_names=data.bands or None,
            resolution=data.resolution,
        )
        assert scene.mask is not None
        truth = scene.mask.astype(np.uint8)
        unlabelled = scene.ignore if scene.ignore is not None else np.zeros(scene.grid.shape, bool)
        truth[:, unlabelled | ~scene.valid] = TRUTH_IGNORE
        target = folder / f"{source.name}.tif"
        write_raster(target, truth, scene.grid, band_names=classes.names, overwrite=True)
        outputs.append(target)
    if not outputs:
        raise DataError(f"{test}: no test scene has labels; remove run.test or add labels.")
    classes_file = folder / CLASSES_FILE
    save_classes(classes.model_copy(update={"ignore_value": TRUTH_IGNORE}), classes_file)
    return [*outputs, classes_file], f"{len(outputs)} test scenes"


def prepare_held_out(context: RunContext) -> Outcome:
    """The training scenes' held-out area as truth, for a run without separate test scenes.

    The area is the one every model's training holds out for validation (`held_out_areas`,
    same split settings and seed), so the scores cover exactly the pixels no model trained on;
    everything outside it is 255 (not scored). Each scene is read and written one strip of
    rows at a time (`LazyScene`), so scenes larger than memory are no obstacle.
    """
    from rasterio.windows import Window

    from spectraseg.data.catalog import open_lazy_dataset
    from spectraseg.data.split import held_out_areas
    from spectraseg.io.geotiff import RasterWriter

    config = context.config
    assert config.run.data is not None
    data = config.data
    scenes, classes = open_lazy_dataset(
        config.run.data,
        labels=data.labels,
        band_names=data.bands or None,
        resolution=data.resolution,
    )
    if data.classes:
        scenes, classes = select_classes(scenes, classes, data.classes)
    areas = held_out_areas(
        [s.name for s in scenes],
        [s.shape for s in scenes],
        settings=data.split,
        seed=config.train.seed,
    )
    folder = truth_dir(context.out)
    outputs: list[Path] = []
    for area in areas:
        scene = scenes[area.scene]
        height, width = scene.shape
        target = folder / f"{scene.name}.tif"
        count = len(classes.names)
        with RasterWriter(
            target, scene.grid, count, "uint8", band_names=classes.names, overwrite=True
        ) as writer:
            for start in range(0, height, HELD_OUT_STRIP_ROWS):
                stop = min(height, start + HELD_OUT_STRIP_ROWS)
                _, valid, mask, ignore = scene.read(Window(0, start, width, stop - start))
                truth = mask.astype(np.uint8)
                outside = ~area.mask(scene.shape, rows=(start, stop))
                truth[:, ~valid | ignore | outside] = TRUTH_IGNORE
                writer.write_rows(truth, start)
        scene.close()
        outputs.append(target)
    classes_file = folder / CLASSES_FILE
    save_classes(classes.model_copy(update={"ignore_value": TRUTH_IGNORE}), classes_file)
    share = sum((area.rows[1] - area.rows[0]) * (area.cols[1] - area.cols[0]) for area in areas)
    total = sum(s.shape[0] * s.shape[1] for s in scenes)
    return [*outputs, classes_file], (
        f"held-out area of {len(areas)} training scene(s) ({share / total:.0%} of their pixels)"
    )


def truth_dir(out: Path) -> Path:
    """The test scenes' truth as rasterized by `prepare:test`."""
    return out / "prepare" / "truth"


# --- models ---------------------------------------------------------------------------------


def model_dir(context: RunContext, label: str) -> Path:
    return context.out / "models" / label


def _training_sections(config: Config) -> dict[str, Any]:
    """What a trained model depends on: every section but prediction, post-processing and the
    run's own (which names the data: the data's files are fingerprinted instead)."""
    return config.model_dump(mode="json", exclude={"predict", "postprocess", "run"})


def _train(label: str) -> Callable[[RunContext], Outcome]:
    def action(context: RunContext) -> Outcome:
        from spectraseg.workflow.training import train_model

        config = model_config(context.config, label)
        out = model_dir(context, label)
        if context.config.run.models[label].per_class:
            return _train_per_class(context, config, out)
        networks = model_names()
        resume = context.resuming and (out / "last.pt").exists() and config.model.name in networks
        if resume:
            log.info("train %s: continuing from %s", label, out / "last.pt")
        result = train_model(
            config,
            data_dir=context.config.run.data or Path("."),
            out_dir=out,
            resume=resume,
            overwrite=not resume,
            device=context.device,
            progress=context.progress,
        )
        outputs = [out / "best.pt", out / "config.yaml"]
        return outputs, f"validation mean Jaccard {result.best_score:.3f}"

    return action


def _train_per_class(context: RunContext, config: Config, out: Path) -> Outcome:
    """One binary model per class in RUN/models/<label>/classes/, merged by its ensemble.yaml."""
    from spectraseg.workflow.per_class import train_per_class

    resume = context.resuming and (out / "config.yaml").exists()
    result = train_per_class(
        config,
        data_dir=context.config.run.data or Path("."),
        out_dir=out,
        resume=resume,
        overwrite=not resume,
        device=context.device,
        progress=context.progress,
    )
    scores = ", ".join(f"{name} {r.best_score:.3f}" for name, r in result.results.items())
    return [result.ensemble, out / "config.yaml"], f"validation Jaccard per class {scores}"


# --- prediction, post-processing, scores ----------------------------------------------------


def predictions_dir(context: RunContext, label: str) -> Path:
    return context.out / "predictions" / label


def _prediction_inputs(context: RunContext) -> list[tuple[str, tuple[Path, ...]]]:
    """(stem, files) of every raster a model predicts: test scenes (without a test set: the
    training scenes holding the held-out area), then inference rasters."""
    config = context.config
    if config.run.test is not None:
        inputs = [(s.name, s.images) for s in _test_sources(config)]
    elif config.run.held_out:
        assert config.run.data is not None
        truth = truth_dir(context.out)
        sources = find_scenes(config.run.data, config.data.labels)
        inputs = [(s.name, s.images) for s in sources if (truth / f"{s.name}.tif").is_file()]
    else:
        inputs = []
    inputs += [(p.stem, (p,)) for p in config.run.inference]
    return inputs


def _predict(label: str) -> Callable[[RunContext], Outcome]:
    def action(context: RunContext) -> Outcome:
        from spectraseg.predict.load_model import load_model
        from spectraseg.predict.raster import predict_raster

        # A run folder: its best.pt, or the ensemble.yaml of per-class models.
        model = load_model(model_dir(context, label), context.device)
        settings, request = context.predict_request(label)
        out = predictions_dir(context, label)
        outputs: list[Path] = []
        for stem, files in _prediction_inputs(context):
            source = files[0] if len(files) == 1 else list(files)
            written = predict_raster(
                model,
                source,
                out,
                settings=settings,
                request=request,
                device=context.device,
                overwrite=True,
                progress=context.progress,
                stem=stem,
            )
            outputs += [p for p in (written.probabilities, written.mask) if p is not None]
        return outputs, f"{len(_prediction_inputs(context))} rasters"

    return action


def _postprocess(label: str) -> Callable[[RunContext], Outcome]:
    def action(context: RunContext) -> Outcome:
        from spectraseg.postprocess.vectorize import vectorize

        folder = predictions_dir(context, label)
        outputs: list[Path] = []
        objects = 0
        for stem, _ in _prediction_inputs(context):
            target = folder / f"{stem}.geojson"
            result = vectorize(
                folder / f"{stem}_probs.tif",
                target,
                context.config.postprocess,
                overwrite=True,
            )
            objects += len(result.table)
            outputs.append(target)
        return outputs, f"{objects} polygons"

    return action


def scores_path(out: Path, label: str) -> Path:
    """A model's scores.json in a run folder (scores.csv lies beside it)."""
    return out / "scores" / label / "scores.json"


def _evaluate(label: str, primary: bool) -> Callable[[RunContext], Outcome]:
    def action(context: RunContext) -> Outcome:
        from spectraseg.evaluate.runner import evaluate_paths
        from spectraseg.evaluate.tables import write_scores

        evaluation, inputs = evaluate_paths(
            predictions_dir(context, label),
            truth_dir(context.out),
            run=model_dir(context, label),
            postprocess=context.config.postprocess,
        )
        folders = [scores_path(context.out, label).parent] + ([context.out] if primary else [])
        outputs: list[Path] = []
        for folder in folders:
            outputs += write_scores(folder, evaluation, sources=inputs.as_dict(), overwrite=True)
        return outputs, f"mean Jaccard {evaluation.mean_jaccard:.3f}"

    return action


# --- the report -----------------------------------------------------------------------------


def report_path(out: Path) -> Path:
    """The run's report, comparing every model (its figures in `report_figures/` beside it)."""
    return out / "report.html"


def report(context: RunContext) -> Outcome:
    """One page comparing the models: scores, training, the test scenes, errors, thresholds."""
    from spectraseg.report.build import figures_dir, write_report
    from spectraseg.report.collect import pipeline_sources

    run = context.config.run
    sources = pipeline_sources(
        context.out, labels=list(run.models), test=[run.test] if run.test else []
    )
    target = write_report(sources, report_path(context.out), overwrite=True)
    figures = sorted(figures_dir(target).glob("*.png"))
    return [target, *figures], f"{len(sources)} models, {len(figures)} figures"


# --- the plan -------------------------------------------------------------------------------


def _check_one_split(config: Config) -> None:
    """Held-out scores need one held-out area: no model may change the split or its seed."""
    for label in config.run.models:
        trained = model_config(config, label)
        if trained.data.split != config.data.split or trained.train.seed != config.train.seed:
            raise ConfigError(
                f"run.models.{label}: changes data.split or train.seed, so it would hold out "
                "other pixels than the other models; set them for all models, or name a "
                "run.test folder."
            )


def plan_stages(context: RunContext) -> list[Stage]:
    """Every stage of this run in order, each with what its result depends on."""
    config = context.config
    run = config.run
    data = config.data.model_dump(mode="json")
    stages = [
        Stage("prepare", "prepare", {"inputs": context.training_inputs, "data": data}, prepare)
    ]
    scored = run.test is not None or run.held_out
    if run.test is not None:
        labels = config.data.labels.model_dump(mode="json")
        depends: dict[str, Any] = {"inputs": context.test_inputs, "labels": labels}
        stages.append(Stage("prepare", "prepare:test", depends, prepare_truth))
    elif run.held_out:
        _check_one_split(config)
        depends = {"inputs": context.training_inputs, "data": data, "seed": config.train.seed}
        stages.append(Stage("prepare", "prepare:test", depends, prepare_held_out))
    for position, label in enumerate(run.models):
        trained = model_config(config, label)
        names = {kind: f"{kind}:{label}" for kind in STAGE_KINDS}
        stages.append(
            Stage(
                "train",
                names["train"],
                # per_class only when set, so that other models keep their fingerprints.
                {
                    "config": _training_sections(trained),
                    **({"per_class": True} if run.models[label].per_class else {}),
                },
                _train(label),
                after=("prepare",),
            )
        )
        if not scored and not run.inference:
            continue
        predict_settings, request = context.predict_request(label)
        stages += [
            Stage(
                "predict",
                names["predict"],
                {
                    "inputs": context.test_inputs,
                    "predict": predict_settings.model_dump(mode="json"),
                    "request": request.model_dump(mode="json", exclude_unset=True),
                },
                _predict(label),
                after=(names["train"], *(("prepare:test",) if scored else ())),
            ),
            Stage(
                "postprocess",
                names["postprocess"],
                {"postprocess": config.postprocess.model_dump(mode="json")},
                _postprocess(label),
                after=(names["predict"],),
            ),
        ]
        if scored:
            stages.append(
                Stage(
                    "evaluate",
                    names["evaluate"],
                    {"primary": position == 0},
                    _evaluate(label, primary=position == 0),
                    after=(names["postprocess"], "prepare:test"),
                )
            )
    if run.report:
        # After every evaluation (or training, without test scenes): a post-processing change
        # reaches the report through their fingerprints; an unchanged run leaves it alone.
        kind = "evaluate" if run.test is not None else "train"
        after = tuple(stage.name for stage in stages if stage.kind == kind)
        stages.append(Stage("report", "report", {"models": list(run.models)}, report, after=after))
    # Stage by stage across models: `--until train` trains every model and stops.
    return sorted(stages, key=lambda stage: STAGE_KINDS.index(stage.kind))
