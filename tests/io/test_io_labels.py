"""Vector, DSTL and raster-mask labels read onto a scene's grid, and their bad inputs."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS

from spectraseg.classes import ClassList, ClassSpec
from spectraseg.data.rasterize import rasterize_classes
from spectraseg.errors import LabelError, SpectrasegWarning
from spectraseg.grid import Grid
from spectraseg.io.dstl import (
    pixel_to_normalized_transform,
    transform_geometry,
    write_grid_sizes,
    write_wkt_csv,
)
from spectraseg.io.labels import read_area, read_dstl_labels, read_vector_labels
from spectraseg.io.masks import read_mask

UTM = CRS.from_epsg(32633)
# 32 x 32 px of 10 m: x 330000..330320, y 5821720..5822040.
GRID = Grid(UTM, Affine(10, 0, 330000, 0, -10, 5822040), 32, 32)
CLASSES = ClassList(
    classes=(
        ClassSpec(name="building", id=1, colour=(255, 0, 0), values=("house", "7201")),
        ClassSpec(name="water", id=2, colour=(0, 0, 255)),
    ),
    unmapped_values="error",
)


def pixel_box(col0: float, row0: float, col1: float, row1: float) -> shapely.Polygon:
    """A box given in pixel columns/rows of GRID, in its map coordinates."""
    (x0, y0), (x1, y1) = GRID.transform @ (col0, row0), GRID.transform @ (col1, row1)
    return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def write_geojson(
    path: Path,
    features: list[tuple[object, shapely.Geometry]],
    *,
    crs: str | None,
    column: str = "class",
) -> Path:
    document: dict[str, object] = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {column: value},
                "geometry": json.loads(shapely.to_geojson(geometry)),
            }
            for value, geometry in features
        ],
    }
    if crs:
        document["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(document))
    return path


def write_vector(
    path: Path,
    features: list[tuple[object, shapely.Geometry]],
    *,
    crs: str,
    column: str = "class",
    driver: str = "GPKG",
) -> Path:
    values = np.asarray([v for v, _ in features])
    geometries = np.asarray([shapely.to_wkb(g) for _, g in features], dtype=object)
    pyogrio.raw.write(
        path, geometries, [values], [column], driver=driver, geometry_type="Polygon", crs=crs
    )
    return path


def rasterized(labels) -> np.ndarray:
    return rasterize_classes(labels.geometries, labels.class_indices, GRID, labels.num_classes)


@pytest.fixture
def two_squares(tmp_path: Path) -> Path:
    """A 4 x 4 px house and a 6 x 6 px pond, by class name, in the grid's CRS."""
    return write_geojson(
        tmp_path / "labels.geojson",
        [("building", pixel_box(2, 2, 6, 6)), ("water", pixel_box(10, 10, 16, 16))],
        crs="urn:ogc:def:crs:EPSG::32633",
    )


def test_geojson_classes_are_rasterized_on_the_grid(two_squares):
    labels = read_vector_labels(two_squares, CLASSES).on_grid(GRID)
    mask = rasterized(labels)
    assert mask.shape == (2, 32, 32)
    assert mask[0].sum() == 16 and mask[0, 2:6, 2:6].all()
    assert mask[1].sum() == 36 and mask[1, 10:16, 10:16].all()


def test_raw_values_map_through_declared_values_and_ids(tmp_path):
    # OSM-style numeric codes: 7201 is a declared value of building, 2 is water's id.
    path = write_vector(
        tmp_path / "osm.gpkg",
        [(7201, pixel_box(0, 0, 2, 2)), (2, pixel_box(4, 4, 6, 6))],
        crs="EPSG:32633",
        column="code",
    )
    labels = read_vector_labels(path, CLASSES, column="code")
    assert labels.class_indices.tolist() == [0, 1]


def test_shapefile_labels_are_read(tmp_path):
    path = write_vector(
        tmp_path / "labels.shp",
        [("house", pixel_box(0, 0, 3, 3))],
        crs="EPSG:32633",
        driver="ESRI Shapefile",
    )
    mask = rasterized(read_vector_labels(path, CLASSES).on_grid(GRID))
    assert mask[0].sum() == 9


def test_labels_in_another_crs_are_reprojected_to_the_image(tmp_path, two_squares):
    native = rasterized(read_vector_labels(two_squares, CLASSES).on_grid(GRID))
    # The same two squares in longitude/latitude.
    from rasterio.warp import transform_geom

    features = []
    for value, box in [("building", pixel_box(2, 2, 6, 6)), ("water", pixel_box(10, 10, 16, 16))]:
        moved = transform_geom(UTM, "EPSG:4326", shapely.geometry.mapping(box))
        features.append((value, shapely.geometry.shape(moved)))
    path = write_geojson(tmp_path / "wgs84.geojson", features, crs=None)  # GeoJSON: WGS 84
    reprojected = rasterized(read_vector_labels(path, CLASSES).on_grid(GRID))
    assert np.array_equal(reprojected, native)


def test_labels_with_a_crs_on_an_image_without_one_are_an_error(two_squares):
    pixel_grid = Grid(None, Affine.identity(), 32, 32)
    with pytest.raises(LabelError, match=r"image .* has none") as caught:
        read_vector_labels(two_squares, CLASSES).on_grid(pixel_grid)
    assert "\n" not in str(caught.value)


def test_a_label_crs_that_cannot_be_transformed_is_an_error(tmp_path):
    local = 'LOCAL_CS["site grid",UNIT["metre",1]]'
    path = write_vector(tmp_path / "local.gpkg", [("house", shapely.box(0, 0, 5, 5))], crs=local)
    with pytest.raises(LabelError, match="cannot be transformed") as caught:
        read_vector_labels(path, CLASSES).on_grid(GRID)
    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


def test_unknown_class_names_with_unmapped_error_list_them(tmp_path):
    path = write_geojson(
        tmp_path / "l.geojson",
        [("buildings", pixel_box(0, 0, 2, 2)), ("water", pixel_box(4, 4, 6, 6))],
        crs=None,
    )
    with pytest.raises(LabelError, match=r"'buildings'.*did you mean 'building'") as caught:
        read_vector_labels(path, CLASSES)
    assert "\n" not in str(caught.value)


def test_unmapped_values_can_be_ignored_or_made_background(tmp_path):
    path = write_geojson(
        tmp_path / "l.geojson",
        [("road", pixel_box(0, 0, 4, 4)), ("water", pixel_box(8, 8, 10, 10))],
        crs=None,
    )
    ignoring = read_vector_labels(path, CLASSES.model_copy(update={"unmapped_values": "ignore"}))
    assert len(ignoring.geometries) == 1 and len(ignoring.ignore_geometries) == 1
    background = read_vector_labels(
        path, CLASSES.model_copy(update={"unmapped_values": "background"})
    )
    assert len(background.geometries) == 1 and len(background.ignore_geometries) == 0


def test_labels_with_no_known_class_are_an_error(tmp_path):
    path = write_geojson(tmp_path / "l.geojson", [("road", pixel_box(0, 0, 4, 4))], crs=None)
    with pytest.raises(LabelError, match="none of the column 'class' values"):
        read_vector_labels(path, CLASSES.model_copy(update={"unmapped_values": "background"}))


def test_a_missing_class_column_suggests_the_closest(tmp_path):
    path = write_geojson(
        tmp_path / "l.geojson", [("water", pixel_box(0, 0, 4, 4))], crs=None, column="fclass"
    )
    with pytest.raises(LabelError, match="no column 'class' \\(did you mean 'fclass'\\?\\)"):
        read_vector_labels(path, CLASSES)


def test_an_empty_label_file_is_all_background_with_a_warning(tmp_path):
    path = write_geojson(tmp_path / "empty.geojson", [], crs=None)
    with pytest.warns(SpectrasegWarning, match="no features; every pixel"):
        labels = read_vector_labels(path, CLASSES)
    assert labels.is_empty
    assert not rasterized(labels.on_grid(GRID)).any()


def test_invalid_polygons_are_repaired_with_a_warning(tmp_path):
    # A bow tie: two triangles meeting at (4, 4) px, invalid as one ring.
    (x0, y0), (x1, y1) = GRID.transform @ (0, 0), GRID.transform @ (8, 8)
    bowtie = shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])
    assert not bowtie.is_valid
    path = write_geojson(tmp_path / "l.geojson", [("water", bowtie)], crs=None)
    with pytest.warns(SpectrasegWarning, match="1 invalid polygon"):
        labels = read_vector_labels(path, CLASSES)
    assert all(g.is_valid for g in labels.geometries)
    assert labels.geometries[0].area == pytest.approx(bowtie.buffer(0).area * 2, rel=1e-6)


def test_polygons_partly_outside_are_clipped_and_those_outside_dropped(tmp_path, caplog):
    path = write_vector(
        tmp_path / "l.gpkg",
        [
            ("water", pixel_box(-4, -4, 4, 4)),
            ("water", pixel_box(40, 40, 44, 44)),
            ("house", pixel_box(8, 8, 12, 12)),
        ],
        crs="EPSG:32633",
    )
    with caplog.at_level(logging.INFO, logger="spectraseg.io.labels"):
        labels = read_vector_labels(path, CLASSES).on_grid(GRID)
    assert labels.feature_ids.tolist() == [1, 3]  # GeoPackage fids
    assert labels.geometries[0].area == pytest.approx(pixel_box(0, 0, 4, 4).area)
    assert "1 polygon(s) partly outside clipped (1), 1 outside dropped (2)" in caplog.text


def test_a_labelled_area_file_is_read_as_polygons(tmp_path):
    path = write_vector(tmp_path / "area.gpkg", [("x", pixel_box(0, 0, 16, 32))], crs="EPSG:32633")
    area = read_area(path).on_grid(GRID)
    assert len(area.geometries) == 1


# ------------------------------------------------------------------------------ DSTL


def test_dstl_rows_land_on_the_image_pixels(tmp_path):
    to_normalized = pixel_to_normalized_transform(0.009, -0.009, 32, 32)
    house = transform_geometry(shapely.MultiPolygon([shapely.box(2, 2, 6, 6)]), to_normalized)
    write_wkt_csv(tmp_path / "wkt.csv", [("img", 1, house), ("img", 2, ""), ("other", 1, "")])
    write_grid_sizes(tmp_path / "sizes.csv", {"img": (0.009, -0.009), "other": (0.009, -0.009)})
    table = read_dstl_labels(tmp_path / "wkt.csv", tmp_path / "sizes.csv", CLASSES)
    assert table.image_ids == ("img", "other")
    pixel_grid = Grid(None, Affine.identity(), 32, 32)
    labels = table.for_image("img", pixel_grid)
    mask = rasterize_classes(labels.geometries, labels.class_indices, pixel_grid, 2)
    assert mask[0].sum() == 16 and mask[0, 2:6, 2:6].all() and not mask[1].any()


def test_dstl_unknown_class_types_are_an_error(tmp_path):
    write_wkt_csv(tmp_path / "wkt.csv", [("img", 9, "")])
    write_grid_sizes(tmp_path / "sizes.csv", {"img": (0.009, -0.009)})
    with pytest.raises(LabelError, match=r"ClassType values not in classes\.yaml: '9'"):
        read_dstl_labels(tmp_path / "wkt.csv", tmp_path / "sizes.csv", CLASSES)


def test_dstl_rings_that_are_not_closed_are_repaired_with_one_warning(tmp_path):
    unclosed = "MULTIPOLYGON (((0.001 -0.001, 0.004 -0.001, 0.004 -0.004)))"
    two_points = "POLYGON ((0.002 -0.002, 0.003 -0.002))"
    write_wkt_csv(tmp_path / "wkt.csv", [("img", 1, unclosed), ("img", 1, two_points)])
    write_grid_sizes(tmp_path / "sizes.csv", {"img": (0.009, -0.009)})
    table = read_dstl_labels(tmp_path / "wkt.csv", tmp_path / "sizes.csv", CLASSES)
    with pytest.warns(SpectrasegWarning, match=r"2 invalid polygon\(s\) repaired"):
        labels = table.for_image("img", Grid(None, Affine.identity(), 32, 32))
    assert len(labels.geometries) == 1  # the two-point ring has no area left


def test_dstl_polygons_that_cannot_be_built_are_named_by_row(tmp_path):
    rows = [("img", 1, "POLYGON ((0.001 -0.001, 0.002 -0.001, 0.002 -0.002, 0.001 -0.001))")]
    rows.append(("img", 2, "POLYGON ((0.001 -0.001))"))
    write_wkt_csv(tmp_path / "wkt.csv", rows)
    write_grid_sizes(tmp_path / "sizes.csv", {"img": (0.009, -0.009)})
    table = read_dstl_labels(tmp_path / "wkt.csv", tmp_path / "sizes.csv", CLASSES)
    with pytest.raises(LabelError, match=r"wkt.csv \(img\): polygon 1 of this image cannot be"):
        table.for_image("img", Grid(None, Affine.identity(), 32, 32))


# ------------------------------------------------------------------------------ masks


def write_mask(path: Path, data: np.ndarray, grid: Grid = GRID, **profile: object) -> Path:
    data = data[None] if data.ndim == 2 else data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PNG drivers warn about CRS they cannot store
        with rasterio.open(
            path,
            "w",
            driver=profile.pop("driver", "GTiff"),
            width=grid.width,
            height=grid.height,
            count=data.shape[0],
            dtype=data.dtype,
            crs=grid.crs,
            transform=grid.transform,
            **profile,
        ) as dataset:
            dataset.write(data)
    return path


def test_an_id_mask_is_decoded_with_ignore_value(tmp_path):
    ids = np.zeros((32, 32), dtype=np.uint8)
    ids[0:4, 0:4] = 1
    ids[8:12, 8:12] = 2
    ids[20:, :] = 255
    classes = CLASSES.model_copy(update={"ignore_value": 255})
    mask, ignore = read_mask(write_mask(tmp_path / "m.tif", ids), classes, GRID)
    assert mask[0].sum() == 16 and mask[1].sum() == 16
    assert ignore.sum() == 12 * 32 and not (mask.any(axis=0) & ignore).any()


def test_a_0_255_mask_maps_through_declared_values(tmp_path):
    road = np.zeros((32, 32), dtype=np.uint8)
    road[:, 5:8] = 255
    classes = ClassList(
        classes=(ClassSpec(name="road", id=1, values=("255",)),), unmapped_values="error"
    )
    mask, _ = read_mask(write_mask(tmp_path / "m.tif", road), classes, GRID)
    assert mask[0].sum() == 3 * 32


def test_unknown_ids_in_a_mask_follow_unmapped_values(tmp_path):
    ids = np.zeros((32, 32), dtype=np.uint8)
    ids[0:2, 0:2] = 7
    path = write_mask(tmp_path / "m.tif", ids)
    with pytest.raises(LabelError, match=r"mask values not in classes\.yaml: 7"):
        read_mask(path, CLASSES, GRID)
    _, ignore = read_mask(path, CLASSES.model_copy(update={"unmapped_values": "ignore"}), GRID)
    assert ignore.sum() == 4


def test_a_per_class_mask_is_read_band_by_band(tmp_path):
    planes = np.zeros((2, 32, 32), dtype=np.uint8)
    planes[0, :4] = 1
    planes[1, 2:6] = 1  # overlaps class 0 on rows 2-3: multi-label
    mask, _ = read_mask(write_mask(tmp_path / "m.tif", planes), CLASSES, GRID)
    assert mask[0].sum() == 4 * 32 and mask[1].sum() == 4 * 32
    assert (mask[0] & mask[1]).sum() == 2 * 32


def test_an_rgb_colour_mask_is_decoded_with_the_class_colours(tmp_path):
    rgb = np.zeros((3, 32, 32), dtype=np.uint8)
    rgb[0, :4] = 255  # red: building
    rgb[2, 10:12] = 255  # blue: water
    path = write_mask(tmp_path / "m.png", rgb, driver="PNG")
    mask, ignore = read_mask(path, CLASSES, GRID)
    assert mask[0].sum() == 4 * 32 and mask[1].sum() == 2 * 32 and not ignore.any()


def test_transparent_pixels_of_an_rgba_mask_are_ignored(tmp_path):
    rgba = np.zeros((4, 32, 32), dtype=np.uint8)
    rgba[3] = 255
    rgba[3, :, :8] = 0
    rgba[1, :, 20:] = 200  # an unknown green, made background
    path = write_mask(tmp_path / "m.png", rgba, driver="PNG")
    classes = CLASSES.model_copy(update={"unmapped_values": "background"})
    mask, ignore = read_mask(path, classes, GRID)
    assert ignore.sum() == 8 * 32 and not mask.any()


def test_a_palette_png_is_decoded_through_its_colours(tmp_path):
    indexed = np.zeros((32, 32), dtype=np.uint8)
    indexed[:3] = 1
    indexed[5:6] = 2
    path = tmp_path / "m.png"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(
            path, "w", driver="PNG", width=32, height=32, count=1, dtype="uint8"
        ) as dataset:
            dataset.write(indexed, 1)
            dataset.write_colormap(1, {0: (0, 0, 0, 255), 1: (255, 0, 0, 255), 2: (0, 0, 255, 255)})
    pixel_grid = Grid(None, Affine.identity(), 32, 32)
    mask, _ = read_mask(path, CLASSES, pixel_grid)
    assert mask[0].sum() == 3 * 32 and mask[1].sum() == 32


def test_a_coarser_mask_is_resampled_onto_the_image_grid(tmp_path):
    coarse_grid = Grid(UTM, Affine(20, 0, 330000, 0, -20, 5822040), 16, 16)
    ids = np.zeros((16, 16), dtype=np.uint8)
    ids[0:2, 0:2] = 2
    mask, _ = read_mask(write_mask(tmp_path / "m.tif", ids, coarse_grid), CLASSES, GRID)
    assert mask[1].sum() == 16 and mask[1, 0:4, 0:4].all()


def test_a_missing_mask_file_is_a_label_error(tmp_path):
    with pytest.raises(LabelError, match="no such mask file"):
        read_mask(tmp_path / "absent.tif", CLASSES, GRID)


def test_a_mask_window_is_the_same_part_of_the_whole_mask(tmp_path):
    ids = (np.arange(32 * 32).reshape(32, 32) % 3).astype(np.uint8)
    path = write_mask(tmp_path / "m.tif", ids)
    whole, _ = read_mask(path, CLASSES, GRID)
    part, _ = read_mask(path, CLASSES, GRID, window=rasterio.windows.Window(5, 7, 10, 12))
    assert np.array_equal(part, whole[:, 7:19, 5:15])
