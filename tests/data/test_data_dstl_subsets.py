"""The real DSTL files as users have them: any subset of the image files, and labels from
`train_wkt_v4.csv` or from the earlier `train_geojson_v3/<id>/<layer>.geojson` release.

The tiny folder here holds only what many users downloaded: `sixteen_band/<id>_A.tif`,
`grid_sizes.csv` and `train_geojson_v3/`, with no classes.yaml (the 10 ClassTypes apply).
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import rasterio
import shapely
from shapely.geometry import mapping

from spectraseg.cli.main import main
from spectraseg.data.catalog import find_scenes, load_dataset
from spectraseg.errors import SpectrasegWarning
from spectraseg.io.dstl_geojson import DSTL_CLASS_NAMES
from spectraseg.sample import generate_sample

# DSTL rasters have no georeference and most ClassTypes are absent here: both warn, as they
# should, and neither is what these tests check.
pytestmark = pytest.mark.filterwarnings("ignore::spectraseg.errors.SpectrasegWarning")

# The sample's classes as the competition's layers (sample id -> layer file stem).
LAYERS = {
    "1": "001_MM_L3_RESIDENTIAL_BUILDING",  # ClassType 1, buildings
    "2": "002_TR_L3_GOOD_ROADS",  # 3, road
    "3": "006_VEG_L5_GROUP_TREES",  # 5, trees
    "5": "008_WTR_L2_STANDING_WATER",  # 8, standing water
}


def as_geojson_release(folder: Path) -> Path:
    """The sample's DSTL folder cut down to A images, grid sizes and train_geojson_v3/."""
    with (folder / "train_wkt_v4.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        geometry = shapely.from_wkt(row["MultipolygonWKT"])
        layer = LAYERS.get(row["ClassType"])
        if layer is None or geometry.is_empty:
            continue
        target = folder / "train_geojson_v3" / row["ImageId"] / f"{layer}.geojson"
        target.parent.mkdir(parents=True, exist_ok=True)
        feature = {"type": "Feature", "properties": {}, "geometry": mapping(geometry)}
        target.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    outline = (
        folder / "train_geojson_v3" / rows[0]["ImageId"] / f"Grid_{rows[0]['ImageId']}.geojson"
    )
    outline.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    shutil.rmtree(folder / "three_band")
    for part in ("P", "M"):
        for path in (folder / "sixteen_band").glob(f"*_{part}.tif"):
            path.unlink()
    (folder / "train_wkt_v4.csv").unlink()
    (folder / "classes.yaml").unlink(missing_ok=True)
    return folder


@pytest.fixture(scope="module")
def dstl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dstl") / "data"
    generate_sample(folder, scenes=3, size=256, seed=6, layout="dstl")
    return as_geojson_release(folder)


def test_a_folder_with_only_sixteen_band_a_images_is_the_dstl_layout(dstl: Path) -> None:
    scenes = find_scenes(dstl)
    assert [len(s.images) for s in scenes] == [1, 1, 1]
    assert all(s.images[0].name.endswith("_A.tif") and s.dstl for s in scenes)


def test_geojson_layers_become_the_ten_class_types(dstl: Path) -> None:
    scenes, classes = load_dataset(dstl)
    assert classes.names == tuple(DSTL_CLASS_NAMES.values())
    assert scenes[0].band_names == tuple(f"swir_{i}" for i in range(1, 9))
    present = {
        name
        for scene in scenes
        for name, seen in zip(classes.names, scene.mask.any(axis=(1, 2)), strict=True)
        if seen
    }
    assert {"buildings", "road", "standing_water"} <= present
    assert "vehicle_small" not in present


def test_an_image_without_a_label_folder_is_left_for_inference(dstl: Path, tmp_path) -> None:
    copy = shutil.copytree(dstl, tmp_path / "copy")
    first = sorted((copy / "train_geojson_v3").iterdir())[0]
    shutil.rmtree(first)
    scenes, _ = load_dataset(copy)
    assert first.name not in {s.name for s in scenes} and len(scenes) == 2


@pytest.mark.slow
def test_the_geojson_release_trains_and_predicts(dstl: Path, tmp_path) -> None:
    run = tmp_path / "run"
    tiny = [
        "model.unet.depth=3", "model.unet.base_filters=4", "data.patch_size=16",
        "data.classes=[buildings, road, standing_water]",
        "train.patches_per_epoch=8", "train.batch_size=4", "train.num_workers=0",
        "train.threads=1", "run.report=false",
    ]  # fmt: skip
    args = ["-q", "train", "--data", str(dstl), "--out", str(run), "--epochs", "1"]
    assert main([*args, *[f"--set={item}" for item in tiny]]) == 0
    image = sorted((dstl / "sixteen_band").glob("*_A.tif"))[0]
    assert main(["-q", "predict", str(run), str(image), "--out", str(tmp_path / "out")]) == 0
    with rasterio.open(tmp_path / "out" / f"{image.stem}_probs.tif") as probs:
        assert probs.count == 3
        assert (probs.width, probs.height) == (32, 32)


def test_labels_of_an_image_without_a_raster_are_a_warning(dstl: Path, tmp_path) -> None:
    copy = shutil.copytree(dstl, tmp_path / "copy")
    first = sorted((copy / "sixteen_band").glob("*_A.tif"))[0]
    first.unlink()
    image_id = first.stem.removesuffix("_A")
    with pytest.warns(SpectrasegWarning, match=f"train_geojson_v3: labels 1 image.*{image_id}"):
        scenes, _ = load_dataset(copy)
    assert len(scenes) == 2
