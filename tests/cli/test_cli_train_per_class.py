"""`spectraseg train --per-class`: one binary model per class, predicted as one model through
the run folder's ensemble.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rasterio
import yaml

from spectraseg.cli.main import main
from spectraseg.sample import generate_sample
from spectraseg.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

TINY = [
    "--set", "model.unet.depth=3",
    "--set", "model.unet.base_filters=4",
    "--set", "data.patch_size=32",
    "--set", "train.patches_per_epoch=8",
    "--set", "train.batch_size=4",
    "--set", "train.num_workers=0",
    "--set", "train.threads=1",
    "--set", "run.report=false",
    "--epochs", "1",
]  # fmt: skip


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("sample"), scenes=3, size=64, seed=2)


def class_names(sample: Path) -> list[str]:
    listed = yaml.safe_load((sample / "classes.yaml").read_text())
    return [c["name"] for c in listed["classes"]]


def train(sample: Path, out: Path, *extra: str) -> int:
    return main(["-q", "train", "--per-class", "--data", str(sample), "--out", str(out), *extra])


def test_per_class_predicts_through_its_ensemble_into_one_output_with_every_class(
    sample, tmp_path
) -> None:
    out = tmp_path / "run"
    assert train(sample, out, *TINY) == 0
    names = class_names(sample)
    assert sorted(p.name for p in (out / "classes").iterdir()) == sorted(names)
    for name in names:
        card = load_checkpoint(out / "classes" / name).card
        assert card.class_names == (name,)
    members = yaml.safe_load((out / "ensemble.yaml").read_text())["members"]
    assert [m["path"] for m in members] == [f"classes/{name}" for name in names]

    predictions = tmp_path / "pred"
    scene = sample / "images" / "scene_000.tif"
    assert main(["-q", "predict", str(out), str(scene), "--out", str(predictions)]) == 0
    with rasterio.open(predictions / "scene_000_probs.tif") as dataset:
        assert dataset.descriptions == tuple(names)
        assert json.loads(dataset.tags()["SPECTRASEG_CLASSES"]) == names

    scores = tmp_path / "scores"
    truth = sample / "masks" / "scene_000.tif"
    args = ["--pred", str(predictions), "--truth", str(truth), "--out", str(scores)]
    assert main(["-q", "evaluate", *args, "--run", str(out)]) == 0
    scored = json.loads((scores / "scores.json").read_text())["per_class"]
    assert sorted(scored) == sorted(names)


def test_a_subset_of_classes_trains_only_those_and_resume_finishes_the_rest(
    sample, tmp_path
) -> None:
    out = tmp_path / "run"
    assert train(sample, out, *TINY, "--set", "data.classes=[water, building]") == 0
    assert sorted(p.name for p in (out / "classes").iterdir()) == ["building", "water"]
    (out / "ensemble.yaml").unlink()  # as a run cut off before its last class leaves it
    assert main(["-q", "train", "--per-class", "--data", str(sample), "--out", str(out),
                 "--resume", "--epochs", "2"]) == 0  # fmt: skip
    assert (out / "ensemble.yaml").is_file()
    assert load_checkpoint(out / "classes" / "water" / "last.pt").epoch == 2


@pytest.mark.parametrize("key", ["model.unet.head", "model.head"])
def test_a_softmax_head_is_refused_in_one_line_naming_its_key(
    sample, tmp_path, capsys, key
) -> None:
    out = tmp_path / "run"
    assert train(sample, out, *TINY, "--set", f"{key}=softmax") == 2
    error = capsys.readouterr().err
    assert f"the config says {key}: softmax; set model.head: sigmoid" in error
    assert not out.exists()


def test_a_used_folder_needs_overwrite(sample, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert train(sample, out, *TINY) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
