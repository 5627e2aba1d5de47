"""A report of every kind of input, built in memory from tiny arrays (no training, no files
read): two models on one 24 × 32 scene, one multi-class, with history, thresholds and a search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spectraseg.evaluate.scores import Evaluation, score_scene
from spectraseg.evaluate.tables import scores_document
from spectraseg.report.build import write_report
from spectraseg.report.figures import png_bytes
from spectraseg.report.sources import ReportSource, SceneView, ThresholdCurves

NAMES = ("building", "water")
COLOURS = ((220, 40, 40), (30, 100, 220))


def tiny_source(label: str, folder: Path, *, shift: int = 0, search: bool = False) -> ReportSource:
    """A model whose prediction is the truth shifted by `shift` columns."""
    truth = np.zeros((2, 24, 32), dtype=bool)
    truth[0, 4:12, 4:12] = True
    truth[1, 14:22, 16:30] = True
    predicted = np.roll(truth, shift, axis=2)
    ignore = np.zeros((24, 32), dtype=bool)
    ignore[:, :2] = True
    scene = score_scene("scene_a", predicted, truth, ignore, multiclass=True)
    scores = scores_document(Evaluation(NAMES, (scene,)), sources={"prediction": str(folder)})
    rng = np.random.default_rng(0)
    composite = rng.random((24, 32, 3)).astype(np.float32)
    view = SceneView("scene_a", composite, "true colour", predicted, truth, ignore, (24, 32))
    history = [
        {
            "epoch": str(epoch),
            "learning_rate": str(1e-3 / epoch),
            "train_loss": str(1.0 / epoch),
            "val_loss": str(1.2 / epoch),
            "val_jaccard": str(0.3 * epoch),
            "val_jaccard_tuned": str(0.31 * epoch),
            "jaccard_building": str(0.2 * epoch),
            "jaccard_water": str(0.4 * epoch),
            "seconds": str(2.0 * epoch),
        }
        for epoch in (1, 2, 3)
    ]
    thresholds = np.linspace(0.05, 0.95, 19)
    curves = ThresholdCurves(
        thresholds, np.stack([1 - thresholds, thresholds * 0.8]), chosen=(0.3, 0.6)
    )
    figures: tuple[Path, ...] = ()
    if search:
        path = folder / "search" / "figures" / "study-1" / "history.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(np.ones((8, 8, 3), dtype=np.float32)))
        figures = (path,)
    return ReportSource(
        label=label,
        folder=folder,
        class_names=NAMES,
        class_colours=COLOURS,
        scores=scores,
        history=history,
        scenes=(view,),
        thresholds=curves,
        search_figures=figures,
        settings={"train": {"epochs": 3}},
        provenance={"seed": "0", "versions": "spectraseg 0.1.0"},
    )


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """report.html of two models with every section's inputs (built once per module: read it,
    do not change it)."""
    tmp_path = tmp_path_factory.mktemp("report")
    sources = [
        tiny_source("unet", tmp_path, shift=1, search=True),
        tiny_source("forest", tmp_path, shift=3),
    ]
    return write_report(sources, tmp_path / "out" / "report.html")


@pytest.fixture
def make_source():
    return tiny_source
