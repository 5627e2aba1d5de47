"""`spectraseg train`: a run folder from the command line, and one-line errors with exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spectraseg.cli.main import main
from spectraseg.sample import generate_sample
from spectraseg.train.checkpoint import load_checkpoint

# Configs for the real sets in ../shared/data name their label files and columns: they run end
# to end on that data in tests/pipeline/test_pipeline_configs.py instead.
REAL_DATA = {"sentinel2-osm", "spacenet-buildings"}
CONFIGS = sorted(
    path
    for path in (Path(__file__).resolve().parents[2] / "configs").glob("*.yaml")
    if path.stem not in REAL_DATA
)

TINY = [
    "--set", "model.unet.depth=3",
    "--set", "model.unet.base_filters=4",
    "--set", "data.patch_size=32",
    "--set", "train.patches_per_epoch=8",
    "--set", "train.batch_size=4",
    "--set", "train.num_workers=0",
    "--set", "train.threads=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("sample"), scenes=3, size=64, seed=2)


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("spectraseg train: error:")]
    assert len(errors) == 1, err
    assert "Traceback" not in "\n".join(err)
    return errors[0]


def test_train_writes_a_run_folder_within_the_epoch_bound(sample, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    code = main(["-q", "train", "--data", str(sample), "--out", str(out), "--epochs", "1", *TINY])
    assert code == 0
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    assert len((out / "history.csv").read_text().splitlines()) == 2
    assert "epochs: 1" in (out / "config.yaml").read_text()
    assert 'id="overlays"' in (out / "report.html").read_text()  # the validation scenes
    split = json.loads((out / "split.json").read_text())
    assert [scene["name"] for scene in split["scenes"]] == ["scene_000", "scene_001", "scene_002"]
    assert sum(scene["held_out"] is not None for scene in split["scenes"]) == 1  # a whole scene


@pytest.mark.filterwarnings("ignore:data.patch_size")  # configs ask for more than 64 px scenes
@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_example_config_trains_end_to_end(config, sample, tmp_path) -> None:
    out = tmp_path / "run"
    small = ["--set", "model.random_forest.trees=4", "--set", "model.random_forest.max_pixels=2000"]
    args = ["-q", "train", "--data", str(sample), "--out", str(out), "--config", str(config)]
    assert main([*args, "--epochs", "1", *TINY, *small]) == 0
    best = load_checkpoint(out)
    assert best.config["model"]["name"] == best.card.model


def test_max_minutes_stops_a_long_run(sample, tmp_path) -> None:
    out = tmp_path / "run"
    args = ["-q", "train", "--data", str(sample), "--out", str(out), "--epochs", "500"]
    assert main([*args, "--max-minutes", "0.0001", *TINY]) == 0
    assert len((out / "history.csv").read_text().splitlines()) == 2


def test_resume_continues_and_existing_folder_needs_a_flag(sample, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    base = ["-q", "train", "--data", str(sample), "--out", str(out), *TINY]
    assert main([*base, "--epochs", "1"]) == 0
    assert main([*base, "--epochs", "1"]) == 2
    assert "--overwrite" in one_line_error(capsys)
    assert main([*base, "--epochs", "2", "--resume"]) == 0
    assert len((out / "history.csv").read_text().splitlines()) == 3


def test_missing_data_folder_is_a_one_line_error(tmp_path, capsys) -> None:
    code = main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    assert code == 2
    assert "nowhere" in one_line_error(capsys)


def test_folder_without_scenes_is_a_one_line_error(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    code = main(["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "run")])
    assert code == 2
    assert "no scenes" in one_line_error(capsys)
    assert not (tmp_path / "run").exists()


def test_labels_without_any_known_class_are_a_one_line_error(sample, tmp_path, capsys) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for folder in ("images", "labels"):
        (data / folder).symlink_to(sample / folder)
    (data / "classes.yaml").write_text("classes:\n  - {name: lake, id: 9}\n")
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), *TINY])
    assert code == 2
    assert "classes.yaml" in one_line_error(capsys)
    assert not (tmp_path / "run").exists()  # a failed start leaves nothing behind


def test_unknown_config_key_is_a_one_line_error(sample, tmp_path, capsys) -> None:
    code = main(
        ["train", "--data", str(sample), "--out", str(tmp_path / "run"), "--set", "train.epoch=3"]
    )
    assert code == 2
    assert "did you mean 'epochs'" in one_line_error(capsys)
    assert not (tmp_path / "run").exists()
