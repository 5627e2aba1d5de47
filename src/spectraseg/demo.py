"""The demo: the built-in sample taken through every stage, top to bottom.

    DIR/data/          training scenes (the built-in sample)
    DIR/test/          a held-out scene drawn with another seed, with its truth
    DIR/run/           the run folder (best.pt, last.pt, history.csv, curves.png, train.log)
    DIR/predictions/   <scene>_probs.tif, <scene>_mask.tif and <scene>.geojson
    DIR/scores.json    per-class Jaccard on the held-out scene (and scores.csv)

Each stage whose output is already there is skipped, so running the demo again continues
where it stopped; `--overwrite` starts over.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from spectraseg.config import load_config
from spectraseg.evaluate.runner import evaluate_paths
from spectraseg.evaluate.tables import scores_table, write_scores
from spectraseg.postprocess.vectorize import vectorize
from spectraseg.predict.ensemble import load_model
from spectraseg.predict.raster import predict_raster
from spectraseg.sample import generate_sample
from spectraseg.train.run import train_model

log = logging.getLogger(__name__)

TEST_SEED = 1000


@dataclass(frozen=True)
class DemoSettings:
    """What the demo verb exposes: sample size and the training time budget."""

    scenes: int = 6
    size: int = 256
    minutes: float = 4.0
    progress: bool = True


def _done(path: Path, overwrite: bool) -> bool:
    if path.exists() and not overwrite:
        log.info("%s is already there; skipping this step (--overwrite starts over)", path)
        return True
    return False


def run_demo(
    out_dir: Path, settings: DemoSettings, *, overwrite: bool, device: torch.device
) -> float:
    """Sample -> train -> predict -> vectorize -> evaluate; returns the mean Jaccard."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data, test = out_dir / "data", out_dir / "test"
    if not _done(data / "classes.yaml", overwrite):
        generate_sample(data, scenes=settings.scenes, size=settings.size, seed=0, overwrite=True)
    if not _done(test / "classes.yaml", overwrite):
        generate_sample(test, scenes=1, size=settings.size, seed=TEST_SEED, overwrite=True)

    run = out_dir / "run"
    if not _done(run / "best.pt", overwrite):
        if run.exists():
            shutil.rmtree(run)  # an unfinished earlier run: start it again
        config = load_config(None, [f"train.max_minutes={settings.minutes}"])
        train_model(config, data_dir=data, out_dir=run, device=device, progress=settings.progress)

    predictions = out_dir / "predictions"
    image = test / "images" / "scene_000.tif"
    if not _done(predictions / "scene_000_mask.tif", overwrite):
        model = load_model(run / "best.pt", device)
        predict_raster(
            model.predictor,
            image,
            predictions,
            info=model.info,
            device=device,
            overwrite=True,
            progress=settings.progress,
        )
    if not _done(predictions / "scene_000.geojson", overwrite):
        vectorize(
            predictions / "scene_000_mask.tif", predictions / "scene_000.geojson", overwrite=True
        )

    evaluation, _ = evaluate_paths(predictions, test / "masks", run=run)
    write_scores(out_dir, evaluation, overwrite=True)
    Console(soft_wrap=True).print(scores_table(evaluation))
    print(
        f"mean Jaccard on the held-out scene: {evaluation.mean_jaccard:.3f} "
        f"(scores in {out_dir / 'scores.json'})"
    )
    return evaluation.mean_jaccard
