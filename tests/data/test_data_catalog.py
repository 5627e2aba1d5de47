"""Data folders (standard and DSTL layouts) found and loaded as labelled scenes."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import shapely

from spectraseg.data.catalog import SceneSource, find_scenes, load_dataset, load_scene
from spectraseg.errors import BandError, DataError, LabelError
from spectraseg.io.labels import LabelSettings
from spectraseg.sample import CLASSES, generate_sample, generate_scene

SIZE, SEED = 64, 5


def truth_ids(index: int) -> np.ndarray:
    return generate_scene(SEED, SIZE, index).class_ids


def ids_of(mask: np.ndarray) -> np.ndarray:
    ids = np.zeros(mask.shape[1:], dtype=np.uint8)
    for position, class_id in enumerate(CLASSES.ids):
        ids[mask[position]] = class_id
    return ids


@pytest.fixture(scope="module")
def standard(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("standard"), scenes=2, size=SIZE, seed=SEED)


@pytest.fixture(scope="module")
def dstl(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(
        tmp_path_factory.mktemp("dstl"), scenes=2, size=SIZE, seed=SEED, layout="dstl"
    )


@pytest.fixture
def copy_of(tmp_path: Path):
    def copy(folder: Path) -> Path:
        return Path(shutil.copytree(folder, tmp_path / folder.name))

    return copy


def quiet_load(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DSTL rasters have no georeference, by design
        return load_dataset(*args, **kwargs)


def test_standard_layout_scenes_are_found_with_their_labels(standard):
    sources = find_scenes(standard)
    assert [s.name for s in sources] == ["scene_000", "scene_001"]
    first = sources[0]
    assert first.images == (standard / "images" / "scene_000.tif",)
    assert first.labels == standard / "labels" / "scene_000.geojson"
    assert first.mask == standard / "masks" / "scene_000.tif"
    assert not first.shared_labels


def test_standard_layout_loads_the_ground_truth_exactly(standard):
    scenes, classes = quiet_load(standard, indices=["ndvi", "ndwi"])
    assert classes.names == CLASSES.names
    for index, scene in enumerate(scenes):
        assert scene.band_names[-2:] == ("ndvi", "ndwi") and scene.image.shape[0] == 10
        assert scene.class_names == CLASSES.names
        assert np.array_equal(ids_of(scene.mask), truth_ids(index))
        assert scene.ignore is not None and not scene.ignore.any()


def test_a_mask_alone_gives_the_same_labels(standard, copy_of):
    folder = copy_of(standard)
    shutil.rmtree(folder / "labels")
    scenes, _ = quiet_load(folder)
    assert np.array_equal(ids_of(scenes[1].mask), truth_ids(1))


def test_dstl_layout_loads_the_ground_truth_through_wkt(dstl):
    sources = find_scenes(dstl)
    assert [len(s.images) for s in sources] == [4, 4] and sources[0].sensor == "dstl"
    scenes, _ = quiet_load(dstl, indices=["ndwi", "evi", "savi", "ccci"])
    for index, scene in enumerate(scenes):
        assert scene.shape == (SIZE, SIZE)
        assert {"rgb_red", "pan", "red_edge", "nir", "swir_8"} <= set(scene.band_names)
        assert scene.band_names[-4:] == ("ndwi", "evi", "savi", "ccci")
        assert np.array_equal(ids_of(scene.mask), truth_ids(index))


def test_dstl_images_missing_from_the_wkt_csv_are_skipped(dstl, copy_of):
    folder = copy_of(dstl)
    lines = (folder / "train_wkt_v4.csv").read_text().splitlines()
    kept = [line for line in lines if not line.startswith("scene_001")]
    (folder / "train_wkt_v4.csv").write_text("\n".join(kept) + "\n")
    scenes, _ = quiet_load(folder)
    assert [s.name for s in scenes] == ["scene_000"]


def move_labels_to_one_shared_file(folder: Path, keep: str) -> None:
    """Replace per-scene GeoJSON files by labels.geojson holding only scene `keep`'s."""
    shared = json.loads((folder / "labels" / f"{keep}.geojson").read_text())
    shutil.rmtree(folder / "labels")
    shutil.rmtree(folder / "masks")
    (folder / "labels.geojson").write_text(json.dumps(shared))


def test_a_shared_label_file_serves_the_scenes_it_overlaps(standard, copy_of):
    folder = copy_of(standard)
    move_labels_to_one_shared_file(folder, keep="scene_000")
    sources = find_scenes(folder)
    assert all(s.shared_labels and s.labels == folder / "labels.geojson" for s in sources)
    scenes, _ = quiet_load(folder)
    assert np.array_equal(ids_of(scenes[0].mask), truth_ids(0))
    assert not scenes[1].mask.any()  # scene_001 lies beside scene_000: no labels, no error


def test_a_shared_label_file_overlapping_no_scene_is_an_error(standard, copy_of):
    folder = copy_of(standard)
    far = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
        "features": [
            {
                "type": "Feature",
                "properties": {"class": "water"},
                "geometry": json.loads(shapely.to_geojson(shapely.box(0, 0, 10, 10))),
            }
        ],
    }
    shutil.rmtree(folder / "labels")
    shutil.rmtree(folder / "masks")
    (folder / "labels.geojson").write_text(json.dumps(far))
    with pytest.raises(LabelError, match="overlaps any scene") as caught:
        quiet_load(folder)
    assert "\n" not in str(caught.value)


def test_a_scene_label_file_missing_its_scene_is_an_error(standard, copy_of):
    folder = copy_of(standard)
    shutil.copy(folder / "labels" / "scene_000.geojson", folder / "labels" / "scene_001.geojson")
    with pytest.raises(LabelError, match=r"scene_001\.geojson: none of its"):
        quiet_load(folder)


def test_a_labelled_area_ignores_every_pixel_outside_it(standard, copy_of):
    folder = copy_of(standard)
    scenes, _ = quiet_load(folder)
    left, bottom, right, top = scenes[0].grid.bounds
    half = shapely.box(left, bottom, (left + right) / 2, top)
    area = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
        "features": [
            {"type": "Feature", "properties": {}, "geometry": json.loads(shapely.to_geojson(half))}
        ],
    }
    (folder / "mapped.geojson").write_text(json.dumps(area))
    scenes, _ = quiet_load(folder, labels=LabelSettings(labelled_area=Path("mapped.geojson")))
    ignore = scenes[0].ignore
    assert ignore[:, SIZE // 2 :].all() and not ignore[:, : SIZE // 2].any()
    assert scenes[1].ignore.all()  # scene_001 lies wholly outside the mapped area


def test_an_index_needing_a_missing_band_names_the_scene(standard):
    source = find_scenes(standard)[0]
    with pytest.raises(BandError, match="scene_000: index 'ndvi' needs band 'nir'"):
        load_scene(source, CLASSES, indices=["ndvi"], band_names=["red", "green"])


def test_a_folder_without_scenes_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no scenes found"):
        find_scenes(tmp_path)


def test_a_folder_without_classes_yaml_is_a_label_error(standard, copy_of):
    folder = copy_of(standard)
    (folder / "classes.yaml").unlink()
    with pytest.raises(LabelError, match=r"classes\.yaml: no such classes file"):
        load_dataset(folder)


def test_scenes_without_any_labels_give_a_data_error(standard, copy_of):
    folder = copy_of(standard)
    shutil.rmtree(folder / "labels")
    shutil.rmtree(folder / "masks")
    with pytest.raises(DataError, match="none of the 2 scenes has labels"):
        load_dataset(folder)


def test_a_scene_source_can_be_built_by_hand(standard):
    source = SceneSource(
        name="x",
        images=(standard / "images" / "scene_001.tif",),
        mask=standard / "masks" / "scene_001.tif",
    )
    scene = load_scene(source, CLASSES)
    assert np.array_equal(ids_of(scene.mask), truth_ids(1))


def test_a_scene_folder_of_band_files_is_one_scene(standard, tmp_path):
    from spectraseg.io.geotiff import write_raster

    scene = generate_scene(SEED, SIZE, 0)
    folder = tmp_path / "bands"
    for name in ("red", "nir"):
        band = scene.image[["coastal", "blue", "green", "red", "red_edge", "nir"].index(name)]
        write_raster(folder / "images" / "area" / f"{name}.tif", band, scene.grid)
    write_raster(folder / "masks" / "area.tif", scene.class_ids, scene.grid)
    shutil.copy(standard / "classes.yaml", folder / "classes.yaml")
    scenes, _ = quiet_load(folder, indices=["ndvi"])
    assert [s.name for s in scenes] == ["area"]
    assert scenes[0].band_names == ("nir", "red", "ndvi")
    assert np.array_equal(ids_of(scenes[0].mask), truth_ids(0))


# The DSTL layout has no georeference by design; the warnings about it are expected here.
@pytest.mark.filterwarnings("ignore::spectraseg.errors.SpectrasegWarning")
@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_coregistration_undoes_a_shifted_sensor_file(tmp_path: Path) -> None:
    """The P file moved by 2 rows is found and read back in place when `coregister` is set."""
    import numpy as np
    import rasterio

    from spectraseg.sample import generate_sample

    generate_sample(tmp_path, scenes=1, size=128, layout="dstl")
    pan_path = tmp_path / "sixteen_band" / "scene_000_P.tif"
    with rasterio.open(pan_path) as dataset:
        profile, original = dataset.profile, dataset.read()
    with rasterio.open(pan_path, "w", **profile) as dataset:
        dataset.write(np.concatenate([original[:, :2], original[:, :-2]], axis=1))

    def pan(coregister: bool) -> np.ndarray:
        scenes, _ = load_dataset(tmp_path, coregister=coregister)
        return scenes[0].image[scenes[0].band_names.index("pan")]

    inside = (slice(8, -8), slice(8, -8))
    error_before = np.abs(pan(False) - original[0])[inside].mean()
    error_after = np.abs(pan(True) - original[0])[inside].mean()
    assert error_after < error_before / 4
