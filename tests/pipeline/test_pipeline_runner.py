"""`spectraseg run`: every stage once, then only what a change affects, and nothing twice."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import yaml

from spectraseg.cli.main import main
from spectraseg.data.catalog import find_scenes
from spectraseg.errors import ConfigError, LabelError
from spectraseg.pipeline.runner import run_pipeline
from spectraseg.predict.choices import PredictRequest
from spectraseg.predict.load_model import load_model
from spectraseg.predict.raster import predict_raster
from spectraseg.sample import generate_sample

TINY = [
    "model.unet.depth=3",
    "model.unet.base_filters=4",
    "train.patches_per_epoch=8",
    "train.batch_size=4",
    "train.num_workers=0",
    "train.threads=1",
    "train.epochs=1",
    "predict.tta=1",
]
FOREST = ["model.name=random-forest", "model.random_forest.trees=4"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    generate_sample(root / "data", scenes=3, size=64, seed=2)
    generate_sample(root / "test", scenes=1, size=64, seed=9)
    return root


def write_config(folder: Path, sample: Path, **sections: object) -> Path:
    document = {
        "run": {
            "out": "run",
            "data": str(sample / "data"),
            "test": str(sample / "test"),
            "models": {"unet": {"set": TINY}, "forest": {"set": FOREST}},
        },
        "data": {"patch_size": 32},
        **sections,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def ran(results) -> list[str]:
    return [r.name for r in results if r.ran]


def file_times(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def finished_run(sample: Path, tmp_path: Path) -> Path:
    config = write_config(tmp_path, sample)
    results = run_pipeline(config)
    assert ran(results) == [r.name for r in results]  # a new folder runs every stage
    return config


def test_a_first_run_fills_the_run_folder(finished_run: Path) -> None:
    run = finished_run.parent / "run"
    for path in (
        "manifest.json",
        "run.log",
        "scores.json",
        "scores.csv",
        "prepare/data.json",
        "models/unet/best.pt",
        "models/forest/best.pt",
        "predictions/unet/scene_000_probs.tif",
        "predictions/forest/scene_000.geojson",
        "scores/forest/scores.json",
        "report.html",
        "report_figures/overlay-forest-scene_000-truth.png",
    ):
        assert (run / path).is_file(), path
    manifest = json.loads((run / "manifest.json").read_text())
    assert {s["status"] for s in manifest["stages"].values()} == {"done"}
    assert manifest["inputs"] and all(len(r["sha256"]) == 64 for r in manifest["inputs"].values())
    assert json.loads((run / "scores.json").read_text())["mean_jaccard"] >= 0.0


def test_changing_nothing_reruns_nothing_and_rewrites_nothing(finished_run: Path) -> None:
    before = file_times(finished_run.parent / "run")
    assert ran(run_pipeline(finished_run)) == []
    assert file_times(finished_run.parent / "run") == before


def test_a_postprocess_change_reruns_only_postprocess_evaluation_and_report(
    finished_run: Path,
) -> None:
    results = run_pipeline(finished_run, ["postprocess.polygons.simplify_px=1.0"])
    assert ran(results) == [
        "postprocess:unet",
        "postprocess:forest",
        "evaluate:unet",
        "evaluate:forest",
        "report",
    ]


def test_one_models_setting_retrains_that_model_only(finished_run: Path) -> None:
    overrides = [f"run.models.forest.set={json.dumps([*FOREST, 'model.random_forest.trees=3'])}"]
    results = run_pipeline(finished_run, overrides)
    assert ran(results) == [
        "train:forest",
        "predict:forest",
        "postprocess:forest",
        "evaluate:forest",
        "report",
    ]


def test_from_reruns_a_stage_and_everything_after_it(finished_run: Path) -> None:
    results = run_pipeline(finished_run, from_stage="evaluate")
    assert ran(results) == ["evaluate:unet", "evaluate:forest", "report"]
    results = run_pipeline(finished_run, until_stage="train")
    assert [r.name for r in results] == ["prepare", "prepare:test", "train:unet", "train:forest"]


def test_a_changed_training_file_retrains(finished_run: Path, sample: Path) -> None:
    classes = sample / "data" / "classes.yaml"
    original = classes.read_text()
    try:
        classes.write_text(original + "\n# touched\n")
        assert {"prepare", "train:unet", "train:forest"} <= set(ran(run_pipeline(finished_run)))
    finally:
        classes.write_text(original)


def test_a_changed_test_file_rescores_without_retraining(finished_run: Path, sample: Path) -> None:
    classes = sample / "test" / "classes.yaml"
    original = classes.read_text()
    try:
        classes.write_text(original + "\n# touched\n")
        again = ran(run_pipeline(finished_run))
    finally:
        classes.write_text(original)
    assert "prepare:test" in again and "predict:unet" in again and "evaluate:unet" in again
    assert not any(name.startswith("train") or name == "prepare" for name in again)


def test_a_failed_stage_is_recorded_and_the_next_run_starts_there(
    finished_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import spectraseg.evaluate.runner as runner

    def broken(*args: object, **kwargs: object) -> None:
        raise LabelError("truth.tif: unreadable")

    with monkeypatch.context() as patch:
        patch.setattr(runner, "evaluate_paths", broken)
        with pytest.raises(LabelError, match="unreadable"):
            run_pipeline(finished_run, from_stage="evaluate")
    manifest = json.loads((finished_run.parent / "run" / "manifest.json").read_text())
    failed = [n for n, s in manifest["stages"].items() if s["status"] == "failed"]
    assert failed == ["evaluate:unet"]
    assert manifest["stages"]["evaluate:unet"]["error"] == "LabelError: truth.tif: unreadable"
    assert ran(run_pipeline(finished_run)) == ["evaluate:unet"]


def test_a_folder_of_another_data_set_is_refused(finished_run: Path, sample: Path) -> None:
    other = sample / "other"
    if not other.exists():
        generate_sample(other, scenes=3, size=64, seed=4)
    with pytest.raises(ConfigError, match="made for the data in"):
        run_pipeline(finished_run, [f"run.data={other}"])


def test_an_unknown_stage_name_suggests_the_right_one(finished_run, capsys) -> None:
    assert main(["run", str(finished_run), "--from", "trian"]) == 2
    err = capsys.readouterr().err
    assert "no such stage (did you mean 'train'?)" in err


def test_paths_in_the_config_are_relative_to_its_folder(sample: Path, tmp_path: Path) -> None:
    shutil.copytree(sample / "data", tmp_path / "data")
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump(
            {
                "run": {"data": "data", "out": "out", "models": {"unet": {"set": TINY}}},
                "data": {"patch_size": 32},
            }
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cwd = Path.cwd()
    os.chdir(elsewhere)
    try:
        results = run_pipeline(Path("..") / "config.yaml", until_stage="prepare")
    finally:
        os.chdir(cwd)
    assert ran(results) == ["prepare", "prepare:test"]
    assert (tmp_path / "out" / "prepare" / "data.json").is_file()


def test_without_a_test_set_models_are_scored_on_the_held_out_area_only(
    sample: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, sample)
    document = yaml.safe_load(config.read_text())
    del document["run"]["test"]
    document["run"]["models"] = {"forest": {"set": FOREST}}
    config.write_text(yaml.safe_dump(document))
    results = run_pipeline(config)
    assert ran(results)[-2:] == ["evaluate:forest", "report"]
    truths = sorted((tmp_path / "run" / "prepare" / "truth").glob("*.tif"))
    assert len(truths) == 1  # 3 scenes: one whole scene is held out, the others trained on
    with rasterio.open(truths[0]) as truth:
        assert (truth.read() != 255).any()
    scores = json.loads((tmp_path / "run" / "scores.json").read_text())
    assert [s["name"] for s in scores["scenes"]] == [truths[0].stem]


def test_a_model_predicts_as_its_card_says_unless_the_config_writes_a_predict_key(
    sample: Path, tmp_path: Path
) -> None:
    untuned = [s for s in TINY if not s.startswith("predict.")]
    config = write_config(tmp_path, sample)
    document = yaml.safe_load(config.read_text())
    document["run"]["models"] = {"unet": {"set": untuned}, "one-pass": {"set": TINY}}
    config.write_text(yaml.safe_dump(document))
    run_pipeline(config, until_stage="predict")
    run = tmp_path / "run"
    scene = find_scenes(sample / "test")[0]
    for label, request in (("unet", PredictRequest()), ("one-pass", PredictRequest(tta=1))):
        model = load_model(run / "models" / label / "best.pt")
        library = tmp_path / "library" / label
        predict_raster(model, list(scene.images), library, stem=scene.name, request=request)
        expected = rasterio.open(library / f"{scene.name}_probs.tif")
        got = rasterio.open(run / "predictions" / label / f"{scene.name}_probs.tif")
        with expected, got:
            assert np.allclose(got.read(), expected.read(), atol=1e-6, equal_nan=True)


def test_held_out_scores_refuse_models_with_their_own_split(sample: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, sample)
    document = yaml.safe_load(config.read_text())
    del document["run"]["test"]
    document["run"]["models"]["forest"]["set"] = [*FOREST, "train.seed=5"]
    config.write_text(yaml.safe_dump(document))
    with pytest.raises(
        ConfigError, match=r"run\.models\.forest: changes data\.split or train\.seed"
    ):
        run_pipeline(config)


@pytest.mark.slow
def test_a_killed_training_resumes_without_preparing_again(
    sample: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    longer = [s for s in TINY if not s.startswith("train.epochs")]
    longer += ["train.epochs=3", "train.patches_per_epoch=64"]
    config = write_config(tmp_path, sample)
    document = yaml.safe_load(config.read_text())
    document["run"]["models"] = {"unet": {"set": longer}}
    config.write_text(yaml.safe_dump(document, sort_keys=False))
    run = tmp_path / "run"
    command = [sys.executable, "-m", "spectraseg", "-q", "run", str(config)]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    last = run / "models" / "unet" / "last.pt"
    deadline = time.monotonic() + 120
    while not last.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["train:unet"]["status"] == "running"
    prepared = manifest["stages"]["prepare"]["started"]

    # Info lines reach run.log whatever level an earlier test's `main(["-q", ...])` left.
    with caplog.at_level(logging.INFO, logger="spectraseg"):
        results = run_pipeline(config)
    assert ran(results)[0] == "train:unet"  # prepare is up to date
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["prepare"]["started"] == prepared
    assert "continuing from" in (run / "run.log").read_text()
    epochs = (run / "models" / "unet" / "history.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in epochs] == ["1", "2", "3"]
