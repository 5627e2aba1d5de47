"""`vectorize` end to end: prediction rasters in, GeoJSON / GPKG / SHP / DSTL CSV out."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from affine import Affine
from pyogrio.raw import read as ogr_read
from rasterio.crs import CRS

from spectraseg.classes import ClassList, ClassSpec
from spectraseg.data.rasterize import rasterize_classes
from spectraseg.errors import ConfigError, LabelError
from spectraseg.grid import Grid
from spectraseg.io.dstl import normalized_to_pixel_transform, read_wkt_csv, transform_geometry
from spectraseg.io.labels import reproject_geometries
from spectraseg.postprocess.chain import PostprocessSettings
from spectraseg.postprocess.vectorize import vectorize
from spectraseg.sample import CLASSES, generate_scene

WGS84 = CRS.from_epsg(4326)
Factory = Callable[..., Path]


def read_features(path: Path) -> tuple[dict[str, object], np.ndarray, dict[str, np.ndarray]]:
    meta, _, wkb, fields = ogr_read(path)
    geometries = np.asarray(shapely.from_wkb(wkb), dtype=object)
    return meta, geometries, dict(zip(meta["fields"], fields, strict=True))


def masks_from_file(path: Path, grid: Grid, names: Sequence[str]) -> np.ndarray:
    meta, geometries, fields = read_features(path)
    crs = CRS.from_user_input(meta["crs"]) if meta["crs"] else None
    if crs is not None and grid.crs is not None and crs != grid.crs:
        geometries = reproject_geometries(geometries, crs, grid.crs)
    positions = [list(names).index(str(n)) for n in fields["class_name"]]
    return rasterize_classes(geometries, positions, grid, len(names))


def per_class_iou(a: np.ndarray, b: np.ndarray) -> list[float]:
    return [float((x & y).sum() / max((x | y).sum(), 1)) for x, y in zip(a, b, strict=True)]


@pytest.fixture
def sample_mask(tmp_path: Path, write_prediction: Factory) -> tuple[Path, np.ndarray, Grid]:
    """The built-in sample's first scene as a multi-label mask raster."""
    scene = generate_scene(seed=0, size=96)
    mask = np.stack([scene.class_ids == spec.id for spec in CLASSES.classes])
    path = write_prediction(
        tmp_path / "scene_000_mask.tif",
        mask,
        class_names=CLASSES.names,
        kind="mask",
        grid=scene.grid,
    )
    return path, mask, scene.grid


def test_geojson_round_trip_keeps_iou_098_per_class(
    sample_mask: tuple[Path, np.ndarray, Grid], tmp_path: Path
) -> None:
    path, mask, grid = sample_mask
    out = tmp_path / "scene.geojson"
    vectorize(path, out)
    meta, geometries, fields = read_features(out)
    assert CRS.from_user_input(meta["crs"]) == WGS84
    assert set(meta["fields"]) >= {"class_name", "class_id", "area_px", "area_m2", "mean_prob"}
    assert shapely.is_valid(geometries).all()
    back = masks_from_file(out, grid, CLASSES.names)
    for name, score, present in zip(
        CLASSES.names, per_class_iou(back, mask), mask.any((1, 2)), strict=True
    ):
        assert score >= 0.98 or not present, name
    ids = dict(zip(CLASSES.names, CLASSES.ids, strict=True))
    assert all(
        ids[str(n)] == int(i) for n, i in zip(fields["class_name"], fields["class_id"], strict=True)
    )
    assert np.allclose(fields["area_m2"], fields["area_px"] * 4.0)  # 2 m pixels


def test_dstl_csv_round_trip_keeps_iou_098_per_class(
    sample_mask: tuple[Path, np.ndarray, Grid], tmp_path: Path
) -> None:
    path, mask, grid = sample_mask
    sizes = tmp_path / "grid_sizes.csv"
    sizes.write_text(",Xmax,Ymin\nscene_000,0.00918,-0.00904\n")
    out = tmp_path / "submission.csv"
    vectorize(path, out, grid_sizes=sizes)
    rows = read_wkt_csv(out)
    assert [int(r.class_type) for r in rows] == list(CLASSES.ids)  # every class, in order
    to_pixels = normalized_to_pixel_transform(0.00918, -0.00904, grid.height, grid.width)
    pixel_grid = Grid(None, Affine.identity(), grid.width, grid.height)
    back = np.zeros_like(mask)
    for k, row in enumerate(rows):
        geometry = shapely.from_wkt(row.wkt)
        assert geometry.is_valid and geometry.geom_type == "MultiPolygon"
        if mask[k].any():
            back[k] = rasterize_classes(
                [transform_geometry(geometry, to_pixels)], [0], pixel_grid, 1
            )[0]
        else:
            assert row.wkt == "MULTIPOLYGON EMPTY"
    for score, present in zip(per_class_iou(back, mask), mask.any((1, 2)), strict=True):
        assert score >= 0.98 or not present


@pytest.mark.parametrize("suffix", [".gpkg", ".shp"])
def test_gpkg_and_shapefile_keep_the_raster_crs(
    sample_mask: tuple[Path, np.ndarray, Grid], tmp_path: Path, suffix: str
) -> None:
    path, mask, grid = sample_mask
    out = tmp_path / f"scene{suffix}"
    result = vectorize(path, out)
    info = pyogrio.read_info(out)
    assert CRS.from_user_input(info["crs"]) == grid.crs
    assert info["features"] == len(result.table) > 10
    back = masks_from_file(out, grid, CLASSES.names)
    assert (
        min(s for s, p in zip(per_class_iou(back, mask), mask.any((1, 2)), strict=True) if p)
        >= 0.98
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_probabilities_use_the_tuned_thresholds_of_the_tag(
    tmp_path: Path, write_prediction: Factory
) -> None:
    probs = np.zeros((2, 8, 8), np.float32)
    probs[:, 2:6, 2:6] = 0.6
    path = write_prediction(
        tmp_path / "s_probs.tif", probs, class_names=["a", "b"], thresholds=[0.5, 0.7]
    )
    result = vectorize(path)
    assert result.counts() == {"a": 1, "b": 0}
    assert result.table.attributes["mean_prob"].tolist() == pytest.approx([0.6])
    overridden = vectorize(path, settings=PostprocessSettings(thresholds={"b": 0.55}))
    assert overridden.counts() == {"a": 1, "b": 1}


def test_uint8_probabilities_are_scaled_by_254(tmp_path: Path, write_prediction: Factory) -> None:
    raw = np.full((1, 6, 6), 127, np.uint8)  # p = 0.5
    raw[0, 0, 0] = 255  # nodata
    path = tmp_path / "u_probs.tif"
    from spectraseg.io.geotiff import write_raster

    write_raster(
        path,
        raw,
        Grid(None, Affine.identity(), 6, 6),
        band_names=["water"],
        nodata=255,
        tags={"SPECTRASEG_KIND": "probabilities", "SPECTRASEG_PROBABILITY_SCALE": "254"},
    )
    attributes = vectorize(path).table.attributes
    assert attributes["area_px"].tolist() == [35]
    assert attributes["mean_prob"].tolist() == pytest.approx([0.5])


def test_a_multiclass_mask_band_is_split_into_classes(
    tmp_path: Path, write_prediction: Factory
) -> None:
    ids = np.zeros((1, 6, 6), np.uint8)
    ids[0, :3] = 1
    ids[0, 5, 5] = 255
    path = write_prediction(
        tmp_path / "m_mask.tif",
        ids,
        class_names=["background", "water"],
        kind="mask",
        head="softmax",
    )
    result = vectorize(path)
    assert result.counts() == {"background": 0, "water": 1}
    assert result.table.attributes["area_px"].tolist() == [18]


def test_a_raster_without_class_names_needs_classes(
    tmp_path: Path, write_prediction: Factory
) -> None:
    probs = np.full((2, 4, 4), 0.9, np.float32)
    path = write_prediction(tmp_path / "x_probs.tif", probs, tags=False, descriptions=False)
    with pytest.raises(
        LabelError, match=r"x_probs.tif: 2 band\(s\) without class names.*--classes"
    ):
        vectorize(path)
    classes = ClassList(classes=(ClassSpec(name="road", id=3), ClassSpec(name="tree", id=7)))
    result = vectorize(path, tmp_path / "x.gpkg", classes=classes)
    assert sorted(set(result.table.attributes["class_id"].tolist())) == [3, 7]


def test_pixel_rasters_give_flagged_pixel_geojson(
    tmp_path: Path, write_prediction: Factory
) -> None:
    mask = np.zeros((1, 10, 10), np.uint8)
    mask[0, 2:5, 3:7] = 1
    path = write_prediction(
        tmp_path / "p_mask.tif",
        mask,
        class_names=["water"],
        kind="mask",
        grid=Grid(None, Affine.identity(), 10, 10),
    )
    out = tmp_path / "p.geojson"
    vectorize(path, out)
    document = json.loads(out.read_text())
    assert document["spectraseg:coordinates"].startswith("pixel")
    (feature,) = document["features"]
    assert shapely.geometry.shape(feature["geometry"]).bounds == (3.0, 2.0, 7.0, 5.0)


def test_a_csv_without_grid_sizes_is_refused(
    sample_mask: tuple[Path, np.ndarray, Grid], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="--grid-sizes"):
        vectorize(sample_mask[0], tmp_path / "out.csv")


def test_an_unknown_output_format_is_refused_before_any_work(
    sample_mask: tuple[Path, np.ndarray, Grid], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=r"unknown vector format '.kml'"):
        vectorize(sample_mask[0], tmp_path / "out.kml")


def test_the_result_is_the_table_in_the_raster_crs_or_as_written(
    sample_mask: tuple[Path, np.ndarray, Grid], tmp_path: Path
) -> None:
    path, _, grid = sample_mask
    native = vectorize(path).table
    wgs84 = vectorize(path, tmp_path / "out.geojson").table
    assert native.crs == grid.crs and wgs84.crs == WGS84
    assert len(native) == len(wgs84) > 10
    assert shapely.is_valid(native.geometries).all()


def test_metres_on_a_pixel_raster_ask_for_pixels(tmp_path: Path, write_prediction: Factory) -> None:
    mask = np.ones((1, 4, 4), np.uint8)
    path = write_prediction(
        tmp_path / "p_mask.tif",
        mask,
        class_names=["water"],
        kind="mask",
        grid=Grid(None, Affine.identity(), 4, 4),
    )
    settings = PostprocessSettings.model_validate({"polygons": {"simplify_m": 1.0}})
    with pytest.raises(ConfigError, match=r"polygons\.simplify_m is in metres"):
        vectorize(path, settings=settings)


def test_strip_by_strip_files_equal_whole_mask_files(
    sample_mask: tuple[Path, np.ndarray, Grid], tmp_path: Path
) -> None:
    path = sample_mask[0]
    settings = {"morphology": {"all": {"opening_px": 1, "min_area_px": 5}}}
    texts = []
    for rows in (0, 7, 1):
        strip_settings = PostprocessSettings.model_validate(
            {**settings, "polygons": {"strip_rows": rows}}
        )
        out = tmp_path / f"rows_{rows}" / "scene.geojson"
        vectorize(path, out, strip_settings)
        texts.append(out.read_text())
    assert texts[0] == texts[1] == texts[2]


def speckled_mask() -> np.ndarray:
    """One class: a 20 x 20 square and 30 lone pixels, as a U-Net leaves along borders."""
    mask = np.zeros((1, 64, 64), np.uint8)
    mask[0, 5:25, 5:25] = 1
    rows, cols = np.divmod(np.arange(30) * 7, 30)
    mask[0, 40 + 2 * rows, 2 * cols + 1] = 1
    return mask


def test_defaults_leave_out_specks_under_nine_pixels(
    tmp_path: Path, write_prediction: Factory
) -> None:
    path = write_prediction(
        tmp_path / "s_mask.tif", speckled_mask(), class_names=["water"], kind="mask"
    )
    assert vectorize(path).counts() == {"water": 1}
    every_pixel = PostprocessSettings.model_validate({"morphology": {"all": {}}})
    assert vectorize(path, settings=every_pixel).counts() == {"water": 31}


def test_vectorize_shows_its_progress_in_rows_on_stderr(
    tmp_path: Path, write_prediction: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_prediction(
        tmp_path / "s_mask.tif", speckled_mask(), class_names=["water"], kind="mask"
    )
    vectorize(path, progress=True)
    assert "rows/s" in capsys.readouterr().err
