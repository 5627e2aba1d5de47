"""The built-in sample: deterministic, multispectral, imbalanced, in both layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from spectraseg.io.classes_file import load_classes
from spectraseg.io.rasters import open_stack
from spectraseg.sample import BAND_NAMES, class_fractions, generate_sample, generate_scene


def test_same_seed_gives_the_same_scene() -> None:
    first, again = generate_scene(7, 64), generate_scene(7, 64)
    assert np.array_equal(first.image, again.image)
    assert np.array_equal(first.class_ids, again.class_ids)
    assert not np.array_equal(first.image, generate_scene(8, 64).image)


def test_scene_has_at_least_eight_named_bands_of_reflectance() -> None:
    scene = generate_scene(0, 96)
    assert scene.image.shape == (len(BAND_NAMES), 96, 96) and len(BAND_NAMES) >= 8
    assert scene.image.dtype == np.float32 and 0 <= scene.image.min() and scene.image.max() <= 1


def test_spectra_are_plausible() -> None:
    """Vegetation is bright in NIR, water dark in NIR and SWIR, roofs bright in the visible."""
    scene = generate_scene(0, 256)
    band = dict(zip(BAND_NAMES, scene.image, strict=True))
    tree, water, building = scene.class_ids == 3, scene.class_ids == 5, scene.class_ids == 1
    assert band["nir"][tree].mean() > 3 * band["red"][tree].mean()
    assert band["nir"][water].mean() < 0.05 and band["swir_1"][water].mean() < 0.05
    assert band["red"][building].mean() > 2 * band["red"][tree].mean()


def test_classes_are_imbalanced_with_a_rare_class() -> None:
    shares = [class_fractions(generate_scene(0, 256, i).class_ids) for i in range(4)]
    mean = {name: np.mean([s[name] for s in shares]) for name in shares[0]}
    assert 0 < mean["pool"] < 0.02
    assert max(mean.values()) > 10 * mean["pool"]


def test_standard_layout_files(tmp_path: Path) -> None:
    generate_sample(tmp_path, scenes=2, size=64, seed=1)
    for scene in ("scene_000", "scene_001"):
        assert (tmp_path / "images" / f"{scene}.tif").is_file()
        assert (tmp_path / "labels" / f"{scene}.geojson").is_file()
        assert (tmp_path / "masks" / f"{scene}.tif").is_file()
    classes = load_classes(tmp_path / "classes.yaml")
    assert "pool" in classes.names
    with open_stack(tmp_path / "images" / "scene_000.tif") as stack:
        assert stack.band_names == BAND_NAMES and stack.grid.crs.to_epsg() == 32633
    with rasterio.open(tmp_path / "masks" / "scene_000.tif") as mask:
        assert mask.count == 1 and set(np.unique(mask.read(1))) <= {0, *classes.ids}


def test_labels_polygons_carry_a_class_property(tmp_path: Path) -> None:
    import pyogrio.raw
    import shapely

    generate_sample(tmp_path, scenes=1, size=64)
    meta, _, geometry, fields = pyogrio.raw.read(tmp_path / "labels" / "scene_000.geojson")
    classes = set(fields[list(meta["fields"]).index("class")])
    assert classes <= set(load_classes(tmp_path / "classes.yaml").names)
    assert meta["crs"] == "EPSG:32633" and shapely.from_wkb(geometry).tolist()
    assert shapely.is_valid(shapely.from_wkb(geometry)).all()


def test_dstl_layout_files_at_their_resolutions(tmp_path: Path) -> None:
    generate_sample(tmp_path, scenes=1, size=64, layout="dstl")
    shapes = {}
    for path in [
        tmp_path / "three_band" / "scene_000.tif",
        *sorted((tmp_path / "sixteen_band").glob("scene_000_*.tif")),
    ]:
        with rasterio.open(path) as dataset:
            shapes[path.stem] = (dataset.count, dataset.height)
    assert shapes == {
        "scene_000": (3, 64),
        "scene_000_P": (1, 64),
        "scene_000_M": (8, 16),
        "scene_000_A": (8, 8),
    }
    header = (tmp_path / "train_wkt_v4.csv").read_text().splitlines()[0]
    assert header == "ImageId,ClassType,MultipolygonWKT"
    assert (tmp_path / "grid_sizes.csv").read_text().startswith("ImageId,Xmax,Ymin")


def test_dstl_files_stack_with_sensor_band_names(tmp_path: Path) -> None:
    generate_sample(tmp_path, scenes=1, size=64, layout="dstl")
    files = [tmp_path / "three_band" / "scene_000.tif", *(tmp_path / "sixteen_band").glob("*.tif")]
    with pytest.warns(UserWarning, match="pixel coordinates"), open_stack(files) as stack:
        assert stack.grid.shape == (64, 64) and stack.count == 20
        assert {"rgb_red", "pan", "nir", "swir_8"} <= set(stack.band_names)
