"""Every example run config in configs/ runs end to end through `spectraseg run` on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spectraseg.cli.main import main
from spectraseg.sample import generate_sample

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

TINY = [
    "model.unet.depth=3",
    "model.unet.base_filters=4",
    "model.unet.max_filters=16",
    "model.random_forest.trees=4",
    "model.random_forest.max_pixels=2000",
    "data.patch_size=32",
    "train.epochs=1",
    "train.patches_per_epoch=8",
    "train.batch_size=4",
    "train.num_workers=0",
    "train.threads=1",
    "predict.tta=1",
]


def run_config(config: Path, data: Path, test: Path, out: Path, *extra: str) -> Path:
    overrides = [f"run.data={data}", f"run.test={test}", f"run.out={out}", *TINY, *extra]
    args = ["-q", "run", str(config)]
    for text in overrides:
        args += ["--set", text]
    assert main(args) == 0
    return out


def models_scored(out: Path) -> dict[str, float]:
    return {
        folder.name: json.loads((folder / "scores.json").read_text())["mean_jaccard"]
        for folder in sorted((out / "scores").iterdir())
    }


@pytest.mark.filterwarnings("ignore:data.patch_size")  # a 32 px patch asked of 64 px scenes
def test_the_sample_config_runs_end_to_end(tmp_path: Path) -> None:
    data = generate_sample(tmp_path / "data", scenes=3, size=64, seed=2)
    test = generate_sample(tmp_path / "test", scenes=1, size=64, seed=9)
    out = run_config(CONFIGS / "sample.yaml", data, test, tmp_path / "run")
    assert set(models_scored(out)) == {"unet", "random-forest"}
    assert (out / "predictions" / "unet" / "scene_000.geojson").is_file()


@pytest.mark.slow
def test_the_dstl_config_runs_end_to_end_on_the_dstl_layout(tmp_path: Path) -> None:
    data = generate_sample(tmp_path / "data", scenes=2, size=64, seed=2, layout="dstl")
    test = generate_sample(tmp_path / "test", scenes=1, size=64, seed=9, layout="dstl")
    # The sample's six classes are not DSTL's ten, which the config's conflict rules name.
    out = run_config(CONFIGS / "dstl.yaml", data, test, tmp_path / "run", "postprocess.rules=[]")
    scores = models_scored(out)
    assert set(scores) == {"unet", "random-forest"}
    assert scores["random-forest"] > 0.3  # the sample is separable pixel by pixel
    truth = out / "prepare" / "truth" / "scene_000.tif"
    assert truth.is_file()  # the WKT CSV's polygons, rasterized on the 3-band grid


def run_real_config(config: Path, out: Path, *extra: str) -> dict[str, float]:
    args = ["-q", "run", str(config), "--set", f"run.out={out}"]
    for text in [*TINY, *extra]:
        args += ["--set", text]
    assert main(args) == 0
    return models_scored(out)


@pytest.mark.slow
@pytest.mark.real_data
def test_the_sentinel2_config_runs_on_the_delivered_folder(shared_data: Path, tmp_path: Path):
    # At 60 m the scene is 256 x 128 px: the whole chain in seconds, on the data as delivered.
    out = tmp_path / "run"
    scores = run_real_config(CONFIGS / "sentinel2-osm.yaml", out, "data.resolution=60")
    assert set(scores) == {"unet", "random-forest"}
    classes = (out / "prepare" / "classes.yaml").read_text()
    assert "name: wetland" in classes  # read from the OSM fclass column
    assert (out / "predictions" / "unet" / "T33UUU_20170216T102101.geojson").is_file()


@pytest.mark.slow
@pytest.mark.real_data
def test_the_spacenet_config_runs_on_the_delivered_folder(shared_data: Path, tmp_path: Path):
    out = tmp_path / "run"
    scores = run_real_config(CONFIGS / "spacenet-buildings.yaml", out, "data.resolution=2")
    assert set(scores) == {"unet", "random-forest"}
    assert "name: building" in (out / "prepare" / "classes.yaml").read_text()
    assert [p.stem for p in (out / "prepare" / "truth").glob("*.tif")] == ["sample_geotiff"]
