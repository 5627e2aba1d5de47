# shapely ships no type information (types-shapely is not a dependency).
# mypy: disable-error-code="import-untyped"
"""Read labels into polygons on a scene's grid: vector files and DSTL WKT CSV.

Vector labels (GeoJSON, GeoPackage, shapefile, anything OGR reads) carry a class column whose
raw values are mapped to classes through `classes.yaml` (names, ids and declared `values` all
map, so OSM `fclass` text or `code` numbers work). What happens to raw values the class list
does not know is `unmapped_values`: `error` stops with the values listed, `ignore` turns their
polygons into "not labelled" areas, `background` drops them.

One label file may serve many scenes: `VectorLabels.on_grid(grid)` reprojects to the scene's
CRS and keeps only the polygons meeting the scene, clipped to it; a scene it misses gets no
polygons (the caller decides whether a source meeting no scene at all is an error).

Raster masks are read by `io/masks.py`, with the same `LabelSettings` and value mapping.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyogrio
import rasterio
import rasterio.warp
import shapely
from affine import Affine
from rasterio._err import CPLE_BaseError  # PROJ failures: only the private module exports it
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioError
from shapely.geometry.base import BaseGeometry

from spectraseg.classes import ClassList
from spectraseg.errors import LabelError, SpectrasegWarning, did_you_mean
from spectraseg.grid import Grid
from spectraseg.io.dstl import (
    normalized_to_pixel_transform,
    parse_wkt,
    read_grid_sizes,
    read_wkt_csv,
    transform_geometry,
)
from spectraseg.io.dstl_geojson import read_geojson_rows
from spectraseg.io.rasters import gdal_path, is_virtual
from spectraseg.settings import Settings

log = logging.getLogger(__name__)

Array = np.ndarray
VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".fgb", ".kml", ".gml", ".sqlite")
MaskEncoding = Literal["auto", "ids", "per_class", "colour"]
# Overhangs smaller than this share of a pixel are rounding (WKT decimals), not real overlaps.
_EDGE_TOLERANCE = 1e-3


class LabelSettings(Settings):
    """How to read a data set's labels (the `data.labels` section)."""

    column: str = "class"  # the attribute holding each polygon's class (OSM: fclass)
    file: Path | None = None  # one vector file labelling every scene (relative: to the data)
    layer: str | None = None  # GeoPackage layer; default the first
    all_touched: bool = False  # burn every pixel a polygon touches, not only centres inside
    labelled_area: Path | None = None  # polygons outside which every pixel is ignored
    mask_encoding: MaskEncoding = "auto"
    # The classes.yaml to use instead of the data folder's (relative: to the data folder);
    # `spectraseg init` writes one beside its config, leaving the data folder untouched.
    classes_file: Path | None = None
    dstl_layers: dict[str, int] | None = None
    """DSTL `train_geojson_v3` layer -> ClassType; None: the competition's table
    (`io/dstl_geojson.DSTL_LAYERS`)."""


def _empty_geometries() -> Array:
    return np.asarray([], dtype=object)


@dataclass(frozen=True, eq=False)
class VectorLabels:
    """Polygons with class positions (into the ClassList) in one CRS, from one source.

    `ignore_geometries` are polygons of unmapped values under `unmapped_values: ignore`.
    `feature_ids` name the features in notes (GeoPackage fid, row number otherwise).
    """

    source: str
    crs: CRS | None
    geometries: Array
    class_indices: Array
    ignore_geometries: Array
    num_classes: int
    feature_ids: Array
    feature_count: int = 0

    @property
    def is_empty(self) -> bool:
        return len(self.geometries) == 0 and len(self.ignore_geometries) == 0

    def on_grid(self, grid: Grid, *, scene: str = "") -> VectorLabels:
        """The polygons meeting `grid`, in its CRS, clipped to it.

        Polygons partly outside are clipped and those wholly outside dropped, with a log note
        naming them; an empty result just means this scene has no labels from this source.
        """
        where = scene or grid.describe()
        if self.crs is not None and grid.crs is None:
            raise LabelError(
                f"{self.source}: labels have a CRS ({_crs_name(self.crs)}) but the image "
                f"{where} has none, so they cannot be placed on it. Georeference the image or "
                "give labels in pixel coordinates."
            )
        crs = self.crs
        if crs is None and grid.crs is not None:
            warnings.warn(
                f"{self.source}: labels have no CRS; assuming the image's ({_crs_name(grid.crs)}).",
                SpectrasegWarning,
                stacklevel=2,
            )
            crs = grid.crs
        needs_transform = crs is not None and grid.crs is not None and crs != grid.crs
        left, bottom, right, top = grid.bounds
        if needs_transform:
            assert crs is not None and grid.crs is not None
            left, bottom, right, top = _transform_bounds(self.source, grid.crs, crs, grid.bounds)
        search = shapely.box(left, bottom, right, top)
        geometries, positions = self._select(self.geometries, search)
        ignore, _ = self._select(self.ignore_geometries, search)
        if needs_transform:
            assert crs is not None and grid.crs is not None
            geometries = reproject_geometries(geometries, crs, grid.crs, source=self.source)
            ignore = reproject_geometries(ignore, crs, grid.crs, source=self.source)
        box = shapely.box(*grid.bounds)
        slack = _EDGE_TOLERANCE * max(grid.resolution)
        geometries, kept, clipped = _clip(geometries, box, slack)
        ignore, _, _ = _clip(ignore, box, slack)
        ids = self.feature_ids[positions[kept]] if len(positions) else self.feature_ids[:0]
        dropped = np.setdiff1d(self.feature_ids, ids)
        if clipped.any() or (len(dropped) and len(ids)):
            log.info(
                "%s on %s: %d polygon(s) partly outside clipped (%s), %d outside dropped (%s)",
                self.source,
                where,
                int(clipped.sum()),
                _some(ids[clipped]),
                len(dropped),
                _some(dropped),
            )
        return VectorLabels(
            source=self.source,
            crs=grid.crs,
            geometries=geometries,
            class_indices=self.class_indices[positions[kept]],
            ignore_geometries=ignore,
            num_classes=self.num_classes,
            feature_ids=ids,
            feature_count=self.feature_count,
        )

    @staticmethod
    def _select(geometries: Array, search: BaseGeometry) -> tuple[Array, Array]:
        if len(geometries) == 0:
            return geometries, np.zeros(0, dtype=np.int64)
        tree = shapely.STRtree(geometries)
        positions = np.sort(np.asarray(tree.query(search, predicate="intersects"), dtype=np.int64))
        return geometries[positions], positions


def _some(ids: Array, limit: int = 5) -> str:
    shown = ", ".join(str(i) for i in ids[:limit])
    return (shown + (", ..." if len(ids) > limit else "")) or "-"


def _clip(geometries: Array, box: BaseGeometry, slack: float) -> tuple[Array, Array, Array]:
    """(clipped polygons meeting box, positions kept, which of those were partly outside).

    Polygons overhanging by less than `slack` (rounding in WKT text) count as inside.
    """
    if len(geometries) == 0:
        empty = np.zeros(0, dtype=bool)
        return geometries, np.zeros(0, dtype=np.int64), empty
    meets = shapely.intersects(geometries, box) & ~shapely.touches(geometries, box)
    kept = np.flatnonzero(meets)
    chosen = geometries[kept]
    inside = shapely.within(chosen, shapely.buffer(box, slack, join_style="mitre"))
    chosen = chosen.copy()
    if (~inside).any():
        chosen[~inside] = _polygonal(shapely.intersection(chosen[~inside], box))
    nonempty = ~shapely.is_empty(chosen)
    return chosen[nonempty], kept[nonempty], ~inside[nonempty]


def _polygonal(geometries: Array) -> Array:
    """Only the polygon parts (make_valid and intersection may add lines and points)."""
    out = np.empty(len(geometries), dtype=object)
    for i, geometry in enumerate(geometries):
        if geometry.geom_type in ("Polygon", "MultiPolygon"):
            out[i] = geometry
        elif geometry.geom_type == "GeometryCollection":
            parts = [
                g for g in shapely.get_parts(geometry) if g.geom_type in ("Polygon", "MultiPolygon")
            ]
            out[i] = shapely.union_all(parts) if parts else shapely.Polygon()
        else:
            out[i] = shapely.Polygon()
    return out


def _crs_name(crs: CRS) -> str:
    try:
        return str(crs.to_string() or crs.to_wkt()[:60])
    except CRSError:
        return "an unreadable CRS"


def _transform_bounds(
    source: str, src: CRS, dst: CRS, bounds: tuple[float, float, float, float]
) -> tuple[float, float, float, float]:
    try:
        result = rasterio.warp.transform_bounds(src, dst, *bounds, densify_pts=21)
    except (CPLE_BaseError, CRSError, RasterioError, ValueError) as error:
        raise _transform_error(source, dst, src, error) from None
    if not all(np.isfinite(result)):
        raise _transform_error(source, dst, src, "non-finite coordinates")
    return (float(result[0]), float(result[1]), float(result[2]), float(result[3]))


def _transform_error(source: str, label_crs: CRS, image_crs: CRS, error: object) -> LabelError:
    detail = str(error).split("\n")[0][:120]
    return LabelError(
        f"{source}: label CRS {_crs_name(label_crs)} cannot be transformed to the image CRS "
        f"{_crs_name(image_crs)} ({detail}). Reproject the labels or fix their CRS."
    )


def reproject_geometries(geometries: Array, src: CRS, dst: CRS, *, source: str = "labels") -> Array:
    """Geometries moved vertex by vertex from `src` to `dst` (no pyproj needed).

    Vertices are transformed exactly; edges stay straight, which is right for the small
    polygons of labels (a 1 km edge bends by centimetres between UTM zones).
    """
    if len(geometries) == 0 or src == dst:
        return geometries

    def move(coords: Array) -> Array:
        xs, ys = rasterio.warp.transform(src, dst, coords[:, 0], coords[:, 1])
        return np.column_stack([xs, ys])

    try:
        moved = shapely.transform(geometries, move)
    except (CPLE_BaseError, CRSError, RasterioError, ValueError) as error:
        raise _transform_error(source, src, dst, error) from None
    coordinates = shapely.get_coordinates(moved)
    if not np.isfinite(coordinates).all():
        raise _transform_error(source, src, dst, "some coordinates fall outside the target CRS")
    return np.asarray(moved, dtype=object)


def value_text(value: Any) -> str | None:
    """Raw class values as text: 7205.0 reads as '7205' so that numeric ids still match."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, float | np.floating):
        if not np.isfinite(value):
            return None
        if float(value).is_integer():
            return str(int(value))
    if isinstance(value, np.integer):
        return str(int(value))
    return str(value).strip()


def map_values(
    values: Sequence[str | None], classes: ClassList, *, source: str, what: str
) -> tuple[Array, Array]:
    """Class positions (-1 for unmapped) and the unmapped flags for raw text values.

    Applies `unmapped_values: error` here; `ignore`/`background` are the caller's to apply.
    """
    table = classes.lookup()
    positions = np.array(
        [table.get(v, -1) if v is not None else -1 for v in values], dtype=np.int64
    )
    unmapped = positions < 0
    if unmapped.any() and classes.unmapped_values == "error":
        counts = Counter(str(v) for v, u in zip(values, unmapped, strict=True) if u)
        listed = ", ".join(f"{v!r} ({n}x)" for v, n in counts.most_common(6))
        first = counts.most_common(1)[0][0]
        raise LabelError(
            f"{source}: {what} values not in classes.yaml: {listed}"
            f"{did_you_mean(first, list(table))}. Add them to a class's `values` or set "
            "unmapped_values: ignore|background."
        )
    return positions, unmapped


# No CRS has coordinates this large (projected metres stay under 2e7, degrees under 360): a
# vertex beyond it is a broken file, and the reprojection or clipping would turn it into
# NaN or drop the polygon silently.
MAX_COORDINATE = 1e9


def _repair(geometries: Array, *, source: str, fixed: Array | None = None) -> Array:
    """Polygonal geometries, invalid ones repaired with make_valid, with one warning counting
    them and those whose rings had to be closed or rebuilt while reading (`fixed`)."""
    invalid = ~shapely.is_valid(geometries)
    repaired = invalid | fixed if fixed is not None else invalid
    if repaired.any():
        warnings.warn(
            f"{source}: {int(repaired.sum())} invalid polygon(s) repaired with make_valid "
            "(self-intersections, bad rings); check them if areas look wrong.",
            SpectrasegWarning,
            stacklevel=3,
        )
    if invalid.any():
        geometries = geometries.copy()
        geometries[invalid] = _polygonal(shapely.make_valid(geometries[invalid]))
    return geometries


def parse_wkb(wkb: Array, *, source: str, feature_ids: Array) -> tuple[Array, Array]:
    """(geometries, which had to be fixed) from OGR's WKB.

    OGR hands over rings GEOS refuses to build (not closed, fewer than 4 points); those are
    closed or rebuilt ("fix") so that `_repair` can make them valid, and counted. A geometry
    that cannot be built even so is refused with its feature id.
    """
    try:
        return np.asarray(shapely.from_wkb(wkb), dtype=object), np.zeros(len(wkb), dtype=bool)
    except shapely.errors.GEOSException:
        pass
    strict = np.asarray(shapely.from_wkb(wkb, on_invalid="ignore"), dtype=object)
    geometries = np.asarray(shapely.from_wkb(wkb, on_invalid="fix"), dtype=object)
    given = np.array([item is not None for item in wkb], dtype=bool)
    fixed = given & np.array([item is None for item in strict], dtype=bool)
    lost = fixed & np.array([item is None for item in geometries], dtype=bool)
    if lost.any():
        raise LabelError(
            f"{source}: feature {feature_ids[np.flatnonzero(lost)[0]]} has a geometry that "
            f"cannot be read or repaired ({int(lost.sum())} such feature(s)). Fix or remove it."
        )
    return geometries, fixed


def check_coordinates(geometries: Array, *, source: str, feature_ids: Array) -> None:
    """Refuse vertices that are not finite or beyond `MAX_COORDINATE`, naming the feature."""
    if len(geometries) == 0:
        return
    bounds = np.abs(shapely.bounds(geometries))
    bad = ~(bounds <= MAX_COORDINATE).all(axis=1) & ~shapely.is_empty(geometries)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        worst = float(np.max(bounds[first])) if np.isfinite(bounds[first]).all() else np.nan
        raise LabelError(
            f"{source}: feature {feature_ids[first]} has a coordinate of {worst:.3g}, beyond "
            f"any CRS's range (|x|, |y| <= {MAX_COORDINATE:.0e}); {int(bad.sum())} such "
            "feature(s). Fix their geometry or remove them."
        )


def read_vector_labels(
    path: str | os.PathLike[str],
    classes: ClassList,
    *,
    column: str = "class",
    layer: str | None = None,
    column_hint: str = "Set data.labels.column in the config.",
) -> VectorLabels:
    """Polygons and their classes from a vector file (GeoJSON, GeoPackage, shapefile...).

    An empty file gives empty labels (all background) with a warning; a file whose polygons
    have no known class at all is an error, as is an unknown value under
    `unmapped_values: error`. `column_hint` ends a wrong column's message: what to set (a
    command's own flag, such as `--class-column`).
    """
    source = Path(path)
    if not is_virtual(source) and not source.exists():
        raise LabelError(f"{source}: no such label file.")
    try:
        info = pyogrio.read_info(gdal_path(source), layer=layer)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, ValueError) as error:
        detail = str(error).split("\n")[0]
        raise LabelError(f"{source}: not a vector file OGR can read ({detail}).") from None
    crs = _read_crs(info.get("crs"), source)
    if info.get("features", 0) == 0:
        warnings.warn(
            f"{source}: no features; every pixel of its scenes is background.",
            SpectrasegWarning,
            stacklevel=2,
        )
        return _empty_labels(str(source), crs, len(classes.classes))
    fields = [str(f) for f in info["fields"]]
    if column not in fields:
        raise LabelError(
            f"{source}: no column {column!r}{did_you_mean(column, fields)}. {column_hint}"
        )
    try:
        with warnings.catch_warnings():
            # OGR's own note on unclosed rings: parse_wkb counts them in one warning instead.
            warnings.filterwarnings("ignore", "Non closed ring", RuntimeWarning)
            _meta, fids, wkb, field_data = pyogrio.raw.read(
                gdal_path(source), layer=layer, columns=[column], return_fids=True
            )
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as error:
        raise LabelError(f"{source}: cannot read features ({error}).") from None
    values = [value_text(v) for v in field_data[0]]
    feature_ids = np.asarray(fids if fids is not None else np.arange(len(values)))
    geometries, fixed = parse_wkb(wkb, source=str(source), feature_ids=feature_ids)
    return _build_labels(
        str(source),
        crs,
        geometries,
        values,
        feature_ids,
        classes,
        what=f"column {column!r}",
        fixed=fixed,
    )


def _read_crs(text: str | None, source: Path) -> CRS | None:
    if not text:
        return None
    try:
        return CRS.from_user_input(text)
    except CRSError as error:
        raise LabelError(
            f"{source}: its CRS cannot be read ({error}). Fix the .prj or CRS."
        ) from None


def _empty_labels(source: str, crs: CRS | None, num_classes: int) -> VectorLabels:
    return VectorLabels(
        source=source,
        crs=crs,
        geometries=_empty_geometries(),
        class_indices=np.zeros(0, dtype=np.int64),
        ignore_geometries=_empty_geometries(),
        num_classes=num_classes,
        feature_ids=np.zeros(0, dtype=np.int64),
    )


def _build_labels(
    source: str,
    crs: CRS | None,
    geometries: Array,
    values: Sequence[str | None],
    feature_ids: Array,
    classes: ClassList,
    *,
    what: str,
    fixed: Array | None = None,
) -> VectorLabels:
    present = np.array([g is not None and not g.is_empty for g in geometries], dtype=bool)
    polygonal = present & np.isin(shapely.get_type_id(geometries), (3, 6, 7))
    check_coordinates(geometries[present], source=source, feature_ids=feature_ids[present])
    if (present & ~polygonal).any():
        warnings.warn(
            f"{source}: {int((present & ~polygonal).sum())} point/line feature(s) skipped; "
            "only polygons are rasterized (buffer lines into polygons first).",
            SpectrasegWarning,
            stacklevel=3,
        )
    fixed = fixed[polygonal] if fixed is not None else None
    geometries = _polygonal(_repair(geometries[polygonal], source=source, fixed=fixed))
    values = [v for v, keep in zip(values, polygonal, strict=True) if keep]
    feature_ids = feature_ids[polygonal]
    positions, unmapped = map_values(values, classes, source=source, what=what)
    if len(values) and unmapped.all():
        shown = ", ".join(repr(v) for v in sorted({str(v) for v in values})[:6])
        raise LabelError(
            f"{source}: none of the {what} values ({shown}) is a class in classes.yaml; "
            "check the column name and the class names/values."
        )
    if unmapped.any():
        log.info(
            "%s: %d polygon(s) with unmapped values become %s",
            source,
            int(unmapped.sum()),
            classes.unmapped_values,
        )
    keep = ~unmapped & ~shapely.is_empty(geometries)
    ignore = unmapped & (classes.unmapped_values == "ignore")
    return VectorLabels(
        source=source,
        crs=crs,
        geometries=geometries[keep],
        class_indices=positions[keep],
        ignore_geometries=geometries[ignore],
        num_classes=len(classes.classes),
        feature_ids=feature_ids[keep],
        feature_count=len(values),
    )


def read_area(path: str | os.PathLike[str], *, layer: str | None = None) -> VectorLabels:
    """The labelled-area polygons of a file (all features, any attributes) as class 0."""
    source = Path(path)
    if not source.exists():
        raise LabelError(f"{source}: no such labelled-area file.")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Non closed ring", RuntimeWarning)
            meta, _fids, wkb, _fields = pyogrio.raw.read(source, layer=layer, columns=[])
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, ValueError) as error:
        raise LabelError(f"{source}: not a vector file OGR can read ({error}).") from None
    rows = np.arange(len(wkb))
    geometries, fixed = parse_wkb(wkb, source=str(source), feature_ids=rows)
    present = np.array([g is not None and not g.is_empty for g in geometries], dtype=bool)
    geometries, fixed = geometries[present], fixed[present]
    check_coordinates(geometries, source=str(source), feature_ids=rows[present])
    if len(geometries) == 0:
        raise LabelError(f"{source}: the labelled-area file has no polygons.")
    return VectorLabels(
        source=str(source),
        crs=_read_crs(meta.get("crs"), source),
        geometries=_polygonal(_repair(geometries, source=str(source), fixed=fixed)),
        class_indices=np.zeros(len(geometries), dtype=np.int64),
        ignore_geometries=_empty_geometries(),
        num_classes=1,
        feature_ids=np.arange(len(geometries)),
        feature_count=len(geometries),
    )


@dataclass(frozen=True, eq=False)
class DstlLabels:
    """A DSTL WKT CSV with its grid sizes: per image id, polygons in normalized coordinates."""

    source: str
    rows: dict[str, list[tuple[str, str]]]  # image id -> [(class type, wkt)]
    grid_sizes: dict[str, tuple[float, float]]
    classes: ClassList

    @property
    def image_ids(self) -> tuple[str, ...]:
        return tuple(self.rows)

    def for_image(self, image_id: str, grid: Grid) -> VectorLabels:
        """The image's polygons in `grid` coordinates, by the competition's transform.

        The transform maps normalized coordinates onto the grid's own pixels (W' = W^2/(W+1)
        with W the grid's width); `grid.transform` then places those pixels.
        """
        if image_id not in self.rows:
            return _empty_labels(self.source, None, len(self.classes.classes))
        if image_id not in self.grid_sizes:
            raise LabelError(
                f"{self.source}: image {image_id!r} has polygons but no row in the grid-sizes "
                "CSV. Add its Xmax, Ymin."
            )
        xmax, ymin = self.grid_sizes[image_id]
        to_pixels = normalized_to_pixel_transform(xmax, ymin, grid.height, grid.width)
        to_grid: Affine = grid.transform @ to_pixels
        where = f"{self.source} ({image_id})"
        class_types = [class_type for class_type, _ in self.rows[image_id]]
        parsed, fixed = _parse_wkt_rows([text for _, text in self.rows[image_id]], where=where)
        geometries = np.asarray([transform_geometry(g, to_grid) for g in parsed], dtype=object)
        labels = _build_labels(
            where,
            None,
            geometries,
            class_types,
            np.arange(len(class_types)),
            self.classes,
            what="ClassType",
            fixed=fixed,
        )
        return labels.on_grid(grid, scene=image_id)


def _parse_wkt_rows(texts: Sequence[str], *, where: str) -> tuple[list[BaseGeometry], Array]:
    """Geometries of WKT rows; rings GEOS refuses (not closed, too few points) are closed or
    rebuilt and flagged, so `_repair` counts them; text that is not WKT names its row."""
    geometries: list[BaseGeometry] = []
    fixed = np.zeros(len(texts), dtype=bool)
    for row, text in enumerate(texts):
        try:
            geometries.append(parse_wkt(text, where=where))
            continue
        except LabelError as error:
            repaired = shapely.from_wkt(text, on_invalid="fix")
            if repaired is None:
                detail = str(error).removeprefix(f"{where}: ").rstrip(".")
                raise LabelError(
                    f"{where}: polygon {row} of this image cannot be read or repaired "
                    f"({detail}). Fix or remove it."
                ) from None
        geometries.append(repaired)
        fixed[row] = True
    return geometries, fixed


def read_dstl_labels(
    wkt_csv: str | os.PathLike[str],
    grid_sizes_csv: str | os.PathLike[str],
    classes: ClassList,
    *,
    layers: dict[str, int] | None = None,
) -> DstlLabels:
    """The DSTL label files: `train_wkt_v4.csv` (or the `train_geojson_v3` folder, whose layers
    map to ClassTypes by `layers`) and `grid_sizes.csv`.

    ClassType numbers map to classes by id (or by declared `values`); the WKT of an image is
    only parsed when that image is loaded.
    """
    rows: dict[str, list[tuple[str, str]]] = {}
    if Path(wkt_csv).is_dir():
        rows = read_geojson_rows(wkt_csv, layers)
    else:
        for row in read_wkt_csv(wkt_csv):
            rows.setdefault(row.image_id, []).append((row.class_type, row.wkt))
    if rows:
        map_values(
            sorted({c for entries in rows.values() for c, _ in entries}),
            classes,
            source=str(wkt_csv),
            what="ClassType",
        )
    return DstlLabels(str(wkt_csv), rows, read_grid_sizes(grid_sizes_csv), classes)


def is_vector_file(path: Path) -> bool:
    """Whether `path` looks like a vector label file by its suffix."""
    return path.suffix.lower() in VECTOR_SUFFIXES
