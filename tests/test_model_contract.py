"""One model contract: the card a run writes is all that prediction and its followers read.

- Python and the command line agree: `predict_raster(load_model(RUN), INPUT, OUT)` and
  `spectraseg predict RUN INPUT --out OUT` write the same probabilities, pixel for pixel, for a
  U-Net and for a random forest (no TTA for the latter in both).
- The config's `predict:` section is what `spectraseg predict --config` applies.
- classes.yaml ids that are not 1..K (3, 7, 12) survive training, prediction, vectorizing,
  the DSTL CSV and evaluation, with no `--classes` anywhere.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyogrio.raw import read as ogr_read

import spectraseg as ss
from spectraseg.cli.main import main
from spectraseg.config import load_config
from spectraseg.sample import generate_sample

pytestmark = pytest.mark.slow

UNET = [
    "train.epochs=1",
    "train.patches_per_epoch=16",
    "train.num_workers=0",
    "model.unet.depth=3",
    "model.unet.base_filters=4",
    "data.patch_size=32",
]
FOREST = [
    "model.name=random-forest",
    "model.random_forest.trees=4",
    "model.random_forest.max_pixels=2000",
]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("contract") / "data", scenes=3, size=64, seed=0)


def _train(data: Path, out: Path, overrides: list[str]) -> Path:
    ss.train_model(load_config(None, overrides), data_dir=data, out_dir=out)
    return out


def _probabilities(path: Path) -> np.ndarray:
    with rasterio.open(path) as dataset:
        return np.asarray(dataset.read())


@pytest.mark.parametrize("overrides", [UNET, FOREST], ids=["unet", "random-forest"])
def test_python_and_the_command_line_predict_the_same_pixels(
    sample: Path, tmp_path: Path, overrides: list[str]
) -> None:
    run = _train(sample, tmp_path / "run", overrides)
    scene = sample / "images" / "scene_000.tif"
    assert main(["predict", str(run), str(scene), "--out", str(tmp_path / "cli"), "-q"]) == 0
    outputs = ss.predict_raster(ss.load_model(run), scene, tmp_path / "python")
    from_cli = _probabilities(tmp_path / "cli" / "scene_000_probs.tif")
    from_python = _probabilities(outputs.probabilities)
    assert np.array_equal(from_cli, from_python, equal_nan=True)
    if "model.name=random-forest" in overrides:
        assert outputs.passes_per_pixel == pytest.approx(1.0)  # no TTA, no overlap


def test_the_config_predict_section_changes_what_predict_does(sample: Path, tmp_path: Path) -> None:
    run = _train(sample, tmp_path / "run", UNET)
    scene = sample / "images" / "scene_000.tif"
    config = tmp_path / "predict.yaml"
    config.write_text("predict:\n  dtype: uint8\n  tta: 2\n  tiling: {window_px: 32}\n")
    assert main(["predict", str(run), str(scene), "--out", str(tmp_path / "plain"), "-q"]) == 0
    args = ["predict", str(run), str(scene), "--out", str(tmp_path / "configured")]
    assert main([*args, "--config", str(config), "-q"]) == 0
    with rasterio.open(tmp_path / "plain" / "scene_000_probs.tif") as dataset:
        assert dataset.dtypes[0] == "float32"
    with rasterio.open(tmp_path / "configured" / "scene_000_probs.tif") as dataset:
        assert dataset.dtypes[0] == "uint8"
    # A flag still wins over the config.
    args = ["predict", str(run), str(scene), "--out", str(tmp_path / "flag")]
    assert main([*args, "--config", str(config), "--dtype", "float32", "-q"]) == 0
    with rasterio.open(tmp_path / "flag" / "scene_000_probs.tif") as dataset:
        assert dataset.dtypes[0] == "float32"


def _with_ids(sample: Path, target: Path) -> Path:
    """The sample with building, road and water as classes 3, 7 and 12, labels as polygons."""
    shutil.copytree(sample, target)
    shutil.rmtree(target / "masks")
    (target / "classes.yaml").write_text(
        "classes:\n"
        "  - {name: building, id: 3}\n"
        "  - {name: road, id: 7}\n"
        "  - {name: water, id: 12}\n"
        "unmapped_values: background\n"
    )
    return target


def test_class_ids_survive_from_classes_yaml_to_the_dstl_csv_and_evaluation(
    sample: Path, tmp_path: Path
) -> None:
    data = _with_ids(sample, tmp_path / "data")
    run = _train(data, tmp_path / "run", FOREST)
    assert ss.load_model(run).card.class_ids == (3, 7, 12)

    scene = data / "images" / "scene_000.tif"
    out = tmp_path / "predictions"
    assert main(["predict", str(run), str(scene), "--out", str(out), "-q"]) == 0
    with rasterio.open(out / "scene_000_probs.tif") as dataset:
        assert json.loads(dataset.tags()["SPECTRASEG_CLASS_IDS"]) == [3, 7, 12]

    polygons = tmp_path / "scene_000.gpkg"
    assert main(["vectorize", str(out / "scene_000_probs.tif"), "--out", str(polygons), "-q"]) == 0
    meta, _, _, fields = ogr_read(polygons)
    class_ids = {int(i) for i in fields[list(meta["fields"]).index("class_id")]}
    assert class_ids and class_ids <= {3, 7, 12}

    grid_sizes = tmp_path / "grid_sizes.csv"
    grid_sizes.write_text(",Xmax,Ymin\nscene_000,0.009,-0.009\n")
    submission = tmp_path / "scene_000.csv"
    vectorized = ss.vectorize(out / "scene_000_probs.tif", submission, grid_sizes=grid_sizes)
    assert vectorized.class_ids == (3, 7, 12)
    with submission.open(newline="") as handle:
        class_types = {int(row["ClassType"]) for row in csv.DictReader(handle)}
    assert class_types == {3, 7, 12}

    evaluation, _ = ss.evaluate_paths(out, data / "labels" / "scene_000.geojson")
    assert evaluation.class_names == ("building", "road", "water")
    assert np.nanmax(evaluation.counts.jaccard()) > 0
