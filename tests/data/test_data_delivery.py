"""Data as delivered: a product's band files and a vector file beside them, no classes.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from spectraseg.data.catalog import data_classes, find_scenes, load_dataset
from spectraseg.errors import DataError
from spectraseg.io.labels import LabelSettings
from spectraseg.sample import CLASSES, generate_sample

BANDS = ("B02", "B03", "B04", "B08")
PRODUCT = "T33UUU_20170216T102101"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("sample"), scenes=1, size=64, seed=3)


def deliver(sample: Path, folder: Path) -> Path:
    """The sample's scene as band files deep in a product folder, its labels at the top."""
    image = next((sample / "images").glob("*.tif"))
    band_dir = folder / "S2A.SAFE" / "GRANULE" / "L1C" / "IMG_DATA"
    band_dir.mkdir(parents=True)
    with rasterio.open(image) as source:
        profile = source.profile | {"count": 1}
        for index, band in enumerate(BANDS, start=1):
            with rasterio.open(band_dir / f"{PRODUCT}_{band}.tif", "w", **profile) as target:
                target.write(source.read(index), 1)
    shutil.copy(next((sample / "labels").glob("*")), folder / "osm.geojson")
    return folder


def test_band_files_deep_in_a_product_are_one_scene_named_after_the_product(sample, tmp_path):
    sources = find_scenes(deliver(sample, tmp_path))
    assert [s.name for s in sources] == [PRODUCT]
    assert [p.name.split("_")[-1] for p in sources[0].images] == [f"{b}.tif" for b in BANDS]
    assert sources[0].labels == tmp_path / "osm.geojson"


def test_without_classes_yaml_the_classes_are_the_label_columns_values(sample, tmp_path):
    root = deliver(sample, tmp_path)
    classes = data_classes(root, find_scenes(root))
    assert classes.names == tuple(sorted(CLASSES.names))
    assert classes.ids == tuple(range(1, len(CLASSES.names) + 1))
    assert len(set(classes.colours)) == len(classes.names)


def test_a_delivered_scene_loads_with_sensor_band_names_and_its_labels(sample, tmp_path):
    scenes, classes = load_dataset(deliver(sample, tmp_path))
    scene = scenes[0]
    assert scene.band_names == ("blue", "green", "red", "nir")
    assert scene.mask is not None and scene.mask.shape == (len(classes.names), 64, 64)
    assert scene.mask.any()


def test_two_vector_files_need_data_labels_file_to_choose(sample, tmp_path):
    root = deliver(sample, tmp_path)
    shutil.copy(root / "osm.geojson", root / "reference.geojson")
    with pytest.raises(DataError, match=r"osm.geojson, reference.geojson\); name one in data"):
        find_scenes(root)
    chosen = find_scenes(root, LabelSettings(file=Path("reference.geojson")))
    assert chosen[0].labels == root / "reference.geojson"


def test_a_yes_column_names_its_one_class_after_the_column(tmp_path):
    (tmp_path / "buildings.geojson").write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
        '{"building": "yes"}, "geometry": {"type": "Point", "coordinates": [0, 0]}}]}'
    )
    from spectraseg.data.delivery import classes_from_labels

    classes = classes_from_labels(tmp_path / "buildings.geojson", "building")
    assert classes.names == ("building",)
    assert classes.lookup()["yes"] == 0


def test_a_chip_beside_its_labels_is_a_scene_and_rasters_elsewhere_are_not_trained_on(
    sample, tmp_path
):
    image = next((sample / "images").glob("*.tif"))
    shutil.copy(image, tmp_path / "chip.tif")
    shutil.copy(next((sample / "labels").glob("*")), tmp_path / "labels.geojson")
    with rasterio.open(image) as source:  # the same pixels a long way off
        profile = source.profile | {
            "transform": source.transform @ rasterio.Affine.translation(1e5, 0)
        }
        with rasterio.open(tmp_path / "elsewhere.tif", "w", **profile) as target:
            target.write(source.read())
    assert [s.name for s in find_scenes(tmp_path)] == ["chip"]
    scenes, _ = load_dataset(tmp_path)
    assert [s.name for s in scenes] == ["chip"]
    assert np.any(scenes[0].mask)
