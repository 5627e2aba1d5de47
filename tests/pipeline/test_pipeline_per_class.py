"""`spectraseg run` with a per-class model: trained as one binary model per class, then
predicted, scored and reported through its ensemble like any other model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio
import yaml

from spectraseg.pipeline.runner import run_pipeline
from spectraseg.sample import generate_sample

FOREST = ["model.name=random-forest", "model.random_forest.trees=4", "predict.tta=1"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    generate_sample(root / "data", scenes=3, size=64, seed=2)
    generate_sample(root / "test", scenes=1, size=64, seed=9)
    return root


def test_a_per_class_model_is_scored_with_every_class(sample: Path, tmp_path: Path) -> None:
    document = {
        "run": {
            "out": "run",
            "data": str(sample / "data"),
            "test": str(sample / "test"),
            "models": {"perclass": {"set": FOREST, "per_class": True}},
        },
        "data": {"patch_size": 32},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    run_pipeline(config)

    run = tmp_path / "run"
    listed = yaml.safe_load((sample / "data" / "classes.yaml").read_text())
    names = [c["name"] for c in listed["classes"]]
    assert (run / "models" / "perclass" / "ensemble.yaml").is_file()
    assert sorted(p.name for p in (run / "models" / "perclass" / "classes").iterdir()) == sorted(
        names
    )
    with rasterio.open(run / "predictions" / "perclass" / "scene_000_probs.tif") as dataset:
        assert dataset.descriptions == tuple(names)
    scores = json.loads((run / "scores.json").read_text())
    assert sorted(scores["per_class"]) == sorted(names)
    assert (run / "report.html").is_file()
