"""Vector writers: formats by extension, CRS and attributes kept, atomic, nothing invalid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely
from pyogrio.raw import read as ogr_read
from rasterio.crs import CRS

from spectraseg.errors import ConfigError, OutputExistsError
from spectraseg.io.vectors import PolygonTable, write_vectors

UTM = CRS.from_epsg(32633)


def table(crs: CRS | None = UTM, count: int = 2) -> PolygonTable:
    geometries = np.array(
        [shapely.box(330000 + 10 * i, 5822000, 330005 + 10 * i, 5822005) for i in range(count)],
        dtype=object,
    )
    attributes = {
        "class_name": np.array(["building"] * count, dtype=object),
        "class_id": np.arange(1, count + 1, dtype=np.int32),
        "mean_prob": np.array([0.75, np.nan][:count]),
    }
    return PolygonTable(geometries, attributes, crs)


@pytest.mark.parametrize("suffix", [".gpkg", ".shp"])
def test_gpkg_and_shapefile_keep_crs_and_attributes(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"polygons{suffix}"
    write_vectors(out, table())
    meta, _, wkb, fields = ogr_read(out)
    assert CRS.from_user_input(meta["crs"]) == UTM
    values = dict(zip(meta["fields"], fields, strict=True))
    assert list(values["class_name"]) == ["building", "building"]
    assert list(values["class_id"]) == [1, 2]
    assert values["mean_prob"][0] == pytest.approx(0.75) and np.isnan(values["mean_prob"][1])
    assert shapely.from_wkb(wkb[0]).area == pytest.approx(25.0)


def test_geojson_is_wgs84_and_loads_through_pyogrio(tmp_path: Path) -> None:
    wgs84 = PolygonTable(
        np.array([shapely.box(13.5, 52.5, 13.6, 52.6)], dtype=object),
        {"class_name": np.array(["water"], dtype=object)},
        CRS.from_epsg(4326),
    )
    out = tmp_path / "polygons.geojson"
    write_vectors(out, wgs84, coordinate_decimals=7)
    info = pyogrio.read_info(out)
    assert CRS.from_user_input(info["crs"]) == CRS.from_epsg(4326)
    assert "crs" not in json.loads(out.read_text())  # RFC 7946: WGS84 is implied


def test_geojson_refuses_a_projected_crs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reproject"):
        write_vectors(tmp_path / "p.geojson", table())


def test_pixel_coordinates_are_flagged_in_geojson(tmp_path: Path) -> None:
    out = tmp_path / "pixels.geojson"
    write_vectors(out, table(crs=None))
    assert json.loads(out.read_text())["spectraseg:coordinates"].startswith("pixel")


def test_an_empty_table_writes_an_empty_layer(tmp_path: Path) -> None:
    out = tmp_path / "empty.gpkg"
    write_vectors(out, table(count=0))
    assert pyogrio.read_info(out)["features"] == 0


def test_invalid_geometries_are_never_written(tmp_path: Path) -> None:
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    bad = PolygonTable(np.array([bowtie], dtype=object), {}, UTM)
    with pytest.raises(ValueError, match="invalid"):
        write_vectors(tmp_path / "bad.gpkg", bad)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_needs_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "p.gpkg"
    write_vectors(out, table())
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_vectors(out, table())
    write_vectors(out, table(count=1), overwrite=True)
    assert pyogrio.read_info(out)["features"] == 1


def test_replacing_a_shapefile_replaces_its_sidecars(tmp_path: Path) -> None:
    out = tmp_path / "p.shp"
    write_vectors(out, table())
    stale = tmp_path / "p.qix"  # a spatial index left by another program
    stale.write_bytes(b"old")
    write_vectors(out, table(count=1), overwrite=True)
    assert not stale.exists()
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".cpg", ".dbf", ".prj", ".shp", ".shx"]
    assert pyogrio.read_info(out)["features"] == 1


def test_an_unknown_extension_lists_the_formats(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown vector format '.kml'; use .geojson"):
        write_vectors(tmp_path / "p.kml", table())
