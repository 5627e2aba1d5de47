# shapely ships no type information (types-shapely is not a dependency).
# mypy: disable-error-code="import-untyped"
"""Polygons out: GeoJSON (RFC 7946), GeoPackage and shapefile through pyogrio, atomically.

The format follows the extension. GeoJSON is RFC 7946: coordinates in WGS84 longitude/latitude
(the caller reprojects; `postprocess.polygons` does), or, for rasters without georeference, in
pixel coordinates (column, row; rows grow downwards), flagged by the collection member
`"spectraseg:coordinates": "pixel"` because GeoJSON has no way to say "no CRS" and every
reader would otherwise take the numbers for degrees. GeoPackage and shapefile keep the CRS given.

Nothing half-written ever looks complete: the file is written in a hidden staging folder next
to the target and moved into place at the end; a shapefile's sidecars (.dbf, .shx, .prj, .cpg)
are moved first and the .shp last, and stale sidecars of a replaced shapefile are removed.
Every geometry is checked before writing: an invalid one is a bug upstream, not output.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from pyogrio.raw import write as ogr_write
from rasterio.crs import CRS

from spectraseg.errors import ConfigError, RasterError
from spectraseg.io.atomic import check_writable, remove_stale_partials, temporary_sibling

log = logging.getLogger(__name__)

DRIVERS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".shp": "ESRI Shapefile"}
# Written by GDAL beside a .shp (and found beside old ones): moved or removed with it.
SHAPEFILE_SIDECARS = (".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".qpj", ".shp.xml")
PIXEL_COORDINATES_MEMBER = {"spectraseg:coordinates": "pixel (column, row; rows grow downwards)"}
WGS84 = CRS.from_epsg(4326)


@dataclass(frozen=True, eq=False)
class PolygonTable:
    """Polygons with one attribute row each, in `crs` (None: pixel coordinates).

    `geometries` is an object array of shapely Polygon/MultiPolygon; each attribute is an array
    of the same length (str, int or float; NaN floats are written as null).
    """

    geometries: np.ndarray
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    crs: CRS | None = None

    def __post_init__(self) -> None:
        for name, values in self.attributes.items():
            if len(values) != len(self.geometries):
                raise ValueError(
                    f"attribute {name!r} has {len(values)} values for "
                    f"{len(self.geometries)} geometries"
                )

    def __len__(self) -> int:
        return len(self.geometries)


def vector_driver(path: str | os.PathLike[str]) -> str:
    """The OGR driver for an output path's extension, or a ConfigError listing the choices."""
    suffix = Path(path).suffix.lower()
    if suffix not in DRIVERS:
        raise ConfigError(
            f"{path}: unknown vector format {suffix or '(no extension)'!r}; use "
            f"{', '.join(DRIVERS)} (or .csv for a DSTL submission)."
        )
    return DRIVERS[suffix]


def _check_geometries(table: PolygonTable, path: Path) -> None:
    geometries = table.geometries
    if len(geometries) == 0:
        return
    kinds = set(shapely.get_type_id(geometries).tolist())
    if not kinds <= {3, 6}:  # Polygon, MultiPolygon
        raise ValueError(f"{path}: only polygons are written, got geometry type ids {kinds}")
    invalid = ~shapely.is_valid(geometries) | shapely.is_empty(geometries)
    if invalid.any():
        first = int(np.flatnonzero(invalid)[0])
        reason = shapely.is_valid_reason(geometries[first])
        raise ValueError(f"{path}: geometry {first} is invalid or empty ({reason}); not written")


def _field_arrays(table: PolygonTable) -> tuple[list[str], list[np.ndarray]]:
    names, arrays = [], []
    for name, values in table.attributes.items():
        array = np.asarray(values)
        if array.dtype.kind in "US":
            array = array.astype(object)
        elif array.dtype.kind == "b":
            array = array.astype(np.int32)
        names.append(name)
        arrays.append(array)
    return names, arrays


@contextlib.contextmanager
def _staging_folder(target: Path) -> Iterator[Path]:
    remove_stale_partials(target.parent, name=target.name)  # a killed run's staging folder
    folder = temporary_sibling(target)
    try:
        folder.mkdir(parents=True)
    except OSError as error:
        raise RasterError(f"{target.parent}: cannot write here ({error}).") from None
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _sidecars(shp: Path) -> list[Path]:
    stem = shp.with_suffix("")
    return [Path(f"{stem}{suffix}") for suffix in SHAPEFILE_SIDECARS]


def _move_into_place(staged: Path, target: Path, driver: str) -> None:
    if driver != "ESRI Shapefile":
        os.replace(staged, target)
        return
    # Sidecars first, the .shp last: a reader opening the .shp finds a complete set.
    for staged_sidecar, target_sidecar in zip(_sidecars(staged), _sidecars(target), strict=True):
        if staged_sidecar.exists():
            os.replace(staged_sidecar, target_sidecar)
        else:
            with contextlib.suppress(FileNotFoundError):
                target_sidecar.unlink()
    os.replace(staged, target)


def write_vectors(
    path: str | os.PathLike[str],
    table: PolygonTable,
    *,
    overwrite: bool = False,
    coordinate_decimals: int | None = None,
    description: str | None = None,
) -> None:
    """Write polygons and their attributes to `.geojson`, `.gpkg` or `.shp`, atomically.

    Args:
        coordinate_decimals: decimals GeoJSON keeps (at least those the caller rounded to,
            or rounding here could undo the validity checked there). Default: GDAL's (7 or 15).
        description: a one-line description stored in GeoJSON files.
    """
    target = Path(path)
    driver = vector_driver(target)
    check_writable(target, overwrite=overwrite)
    _check_geometries(table, target)
    layer_options: dict[str, str] = {}
    crs = table.crs
    if driver == "GeoJSON":
        if crs is None:
            layer_options["FOREIGN_MEMBERS_COLLECTION"] = json.dumps(PIXEL_COORDINATES_MEMBER)
        elif CRS.from_user_input(crs) != WGS84:
            raise ValueError(f"{target}: GeoJSON is WGS84 (RFC 7946); reproject from {crs} first")
        else:
            layer_options["RFC7946"] = "YES"
        if coordinate_decimals is not None:
            layer_options["COORDINATE_PRECISION"] = str(coordinate_decimals)
        if description:
            layer_options["DESCRIPTION"] = description
    names, arrays = _field_arrays(table)
    geometry_type = "Unknown" if driver == "GeoJSON" else "MultiPolygon"
    with _staging_folder(target) as folder:
        staged = folder / target.name
        try:
            with warnings.catch_warnings():
                # pyogrio warns that a file without CRS may be unusable: pixel output is flagged.
                warnings.simplefilter("ignore", UserWarning)
                ogr_write(
                    str(staged),
                    shapely.to_wkb(table.geometries) if len(table) else np.array([], dtype=object),
                    field_data=arrays,
                    fields=names,
                    layer=target.stem,
                    driver=driver,
                    geometry_type=geometry_type,
                    crs=crs.to_wkt() if crs is not None else None,
                    promote_to_multi=driver != "GeoJSON",
                    nan_as_null=True,
                    layer_options=layer_options or None,
                )
        except (DataSourceError, DataLayerError, OSError) as error:
            raise _write_error(target, error) from None
        if driver == "GPKG" and len(table):
            _check_spatial_index(staged, target, target.stem, len(table))
        _move_into_place(staged, target, driver)
    log.info("wrote %d polygons to %s", len(table), target)


def _write_error(target: Path, error: Exception) -> RasterError:
    """One line for a failed write; a full disk says so (SQLite and OGR word it their way)."""
    detail = " ".join(str(error).split())
    # OGR drivers often word it only as "Cannot write feature": look at the disk too.
    nearly_full = shutil.disk_usage(target.parent).free < 2**20 if target.parent.is_dir() else False
    if nearly_full or any(w in detail.lower() for w in ("disk is full", "no space", "disk full")):
        return RasterError(f"{target}: the disk is full; free space or write somewhere else.")
    shown = detail if len(detail) <= 200 else detail[:200] + "..."  # SQLite quotes whole scripts
    return RasterError(f"{target}: cannot write polygons ({shown}).")


def _check_spatial_index(staged: Path, target: Path, layer: str, count: int) -> None:
    """Refuse a GeoPackage whose R-tree index is missing or short.

    GDAL builds the index when the file is closed and only logs a failure there (a full disk):
    the file would look complete yet make every spatial query in GIS tools slow or wrong.
    """
    import sqlite3  # only GeoPackage outputs need it

    table = f"rtree_{layer}_geom"
    try:
        uri = f"{staged.resolve().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
            (indexed,) = db.execute(f'SELECT count(*) FROM "{table}"').fetchone()
    except sqlite3.Error:
        indexed = 0
    if indexed != count:
        free_mb = shutil.disk_usage(staged.parent).free / 2**20
        raise RasterError(
            f"{target}: GDAL could not build the spatial index ({indexed} of {count} polygons "
            f"indexed; {free_mb:.0f} MB free: the disk may be full). Free space or write "
            "somewhere else."
        )
