"""The demo: the built-in sample taken through `spectraseg run`, top to bottom.

    DIR/data/              training scenes (the built-in sample)
    DIR/test/              a held-out scene drawn with another seed, with its truth
    DIR/config.yaml        the run config the demo ran: `spectraseg run DIR/config.yaml` reruns it
    DIR/models/<model>/    a run folder per model: the U-Net and the random-forest baseline
    DIR/predictions/<model>/  <scene>_probs.tif, _mask.tif, _classes.tif and <scene>.geojson
    DIR/scores.json        the U-Net's per-class Jaccard on the held-out scene (and scores.csv)
    DIR/scores/<model>/    each model's scores; DIR/manifest.json and DIR/run.log
    DIR/report.html        both models side by side, to look at (figures in report_figures/)

The demo only makes the data and the config; everything else is `run_pipeline`, so a rerun
continues where it stopped and `--overwrite` starts over.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from spectraseg.io.atomic import write_text_atomic
from spectraseg.pipeline.runner import run_pipeline
from spectraseg.pipeline.stages import report_path, scores_path
from spectraseg.sample import generate_sample

log = logging.getLogger(__name__)

TEST_SEED = 1000
PRIMARY, BASELINE = "unet", "random-forest"


@dataclass(frozen=True)
class DemoSettings:
    """What the demo verb exposes: sample size and the training time budget."""

    scenes: int = 6
    size: int = 256
    minutes: float = 4.0
    progress: bool = True


def demo_config(settings: DemoSettings) -> dict[str, object]:
    """The run config the demo writes: the sample's data, the U-Net and the forest baseline."""
    return {
        "run": {
            "out": ".",
            "data": "data",
            "test": "test",
            "models": {
                PRIMARY: {"set": [f"train.max_minutes={settings.minutes}"]},
                BASELINE: {"set": ["model.name=random-forest"]},
            },
        },
    }


def run_demo(
    out_dir: Path, settings: DemoSettings, *, overwrite: bool, device: torch.device
) -> float:
    """Sample -> config -> `run_pipeline`; returns the U-Net's mean Jaccard on the test scene."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data, test = out_dir / "data", out_dir / "test"
    if overwrite or not (data / "classes.yaml").exists():
        generate_sample(data, scenes=settings.scenes, size=settings.size, seed=0, overwrite=True)
    if overwrite or not (test / "classes.yaml").exists():
        generate_sample(test, scenes=1, size=settings.size, seed=TEST_SEED, overwrite=True)
    config_path = out_dir / "config.yaml"
    text = "# Written by `spectraseg demo`; `spectraseg run` on it reruns what is not done.\n"
    text += yaml.safe_dump(demo_config(settings), sort_keys=False)
    if not config_path.exists() or config_path.read_text(encoding="utf-8") != text:
        write_text_atomic(config_path, text)
    run_pipeline(config_path, overwrite=overwrite, device=device, progress=settings.progress)
    scores = {
        label: json.loads(scores_path(out_dir, label).read_text(encoding="utf-8"))["mean_jaccard"]
        for label in (PRIMARY, BASELINE)
    }
    print(
        f"mean Jaccard on the held-out scene: U-Net {scores[PRIMARY]:.3f}, random forest "
        f"{scores[BASELINE]:.3f} (scores in {out_dir / 'scores.json'})"
    )
    if report_path(out_dir).is_file():
        print(f"report: {report_path(out_dir)}")
    return float(scores[PRIMARY])
