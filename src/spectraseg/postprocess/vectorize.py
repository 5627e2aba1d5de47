"""`vectorize`: a prediction raster -> clean masks -> polygons -> a vector file, in one call.

The output format follows the extension: `.geojson` (RFC 7946, WGS84; pixel coordinates,
flagged, when the raster has no CRS), `.gpkg` and `.shp` (the raster's CRS), `.csv` (the DSTL
submission: `ImageId, ClassType, MultipolygonWKT`, one row per class, polygons in normalized
coordinates through the grid-sizes CSV, empty classes as `MULTIPOLYGON EMPTY`).

The raster is read in strips (see `polygons.py`) and each strip's finished objects are placed
at once, so memory is one strip plus the output polygons themselves, never the whole raster.
A class called "background" (what a multi-class model may predict everywhere else) is not
vectorized. Beside a GeoJSON, GeoPackage or shapefile goes its QGIS style (`scene.qml`: filled by
class in the classes' colours, which predict stores in the rasters' tags).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spectraseg.classes import ClassList
from spectraseg.errors import ConfigError, LabelError
from spectraseg.grid import Grid
from spectraseg.io.atomic import check_writable, write_text_atomic
from spectraseg.io.dstl import read_grid_sizes, write_wkt_csv
from spectraseg.io.prediction_raster import DEFAULT_COLOUR, PredictionRaster, scene_name
from spectraseg.io.qgis_style import polygon_style
from spectraseg.io.vectors import PolygonTable, vector_driver, write_vectors
from spectraseg.postprocess.chain import (
    PostprocessSettings,
    postprocess_window,
    resolve_postprocess,
)
from spectraseg.postprocess.placement import TableBuilder, dstl_class_geometries
from spectraseg.postprocess.polygons import VectorObject, iter_object_batches
from spectraseg.postprocess.thresholds import AUTO
from spectraseg.postprocess.units import WGS84
from spectraseg.progress import progress_bar

log = logging.getLogger(__name__)

BACKGROUND_NAMES = ("background",)


@dataclass(frozen=True)
class VectorizeResult:
    """The polygons as written (or as they would be: the raster's CRS when not written)."""

    table: PolygonTable
    class_names: tuple[str, ...]
    class_ids: tuple[int, ...]
    grid: Grid
    output: Path | None = None

    def counts(self) -> dict[str, int]:
        """Polygons per class (rows per class for a DSTL CSV: one, or none when empty)."""
        names = self.table.attributes.get("class_name", np.array([], dtype=object))
        return {name: int(np.count_nonzero(names == name)) for name in self.class_names}


def vectorize(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    settings: PostprocessSettings | None = None,
    *,
    classes: ClassList | None = None,
    grid_sizes: str | os.PathLike[str] | None = None,
    image_id: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> VectorizeResult:
    """Polygons of every class of a `_probs.tif` or `_mask.tif`, written to `output` if given.

    Args:
        settings: thresholds, morphology, rules and polygon options (defaults: tuned
            thresholds from the raster's tag or 0.5, objects and holes under 9 pixels removed,
            half-pixel simplification).
        classes: names and ids when the raster has none, and the ids written (`class_id`,
            DSTL `ClassType`); default ids are 1..K in band order.
        grid_sizes: the DSTL grid-sizes CSV, needed for a `.csv` output.
        image_id: the DSTL ImageId (default: the raster's name without `_probs`/`_mask`).
        progress: show a progress bar (rows done) on stderr.
    """
    settings = settings or PostprocessSettings()
    target = Path(output) if output is not None else None
    is_csv = target is not None and target.suffix.lower() == ".csv"
    if target is not None and not is_csv:
        check_writable(target, overwrite=overwrite)
        check_writable(style_path(target), overwrite=overwrite)
        vector_driver(target)  # an unknown extension fails before any work
    dstl_size = None
    if is_csv:
        assert target is not None
        check_writable(target, overwrite=overwrite)
        image_id = image_id or scene_name(source)
        dstl_size = _dstl_size(target, grid_sizes, image_id)
    with PredictionRaster(source, classes=classes) as raster:
        info = raster.info
        geojson = target is not None and not is_csv and vector_driver(target) == "GeoJSON"
        output_crs = WGS84 if geojson and info.grid.crs is not None else None
        builder = TableBuilder(info.class_names, info.class_ids, info.grid, output_crs=output_crs)
        pixel_objects: list[VectorObject] = []
        name = Path(source).name
        # The settings are checked before the bar appears, so a bad one stays a one-line error.
        steps = _object_batches(raster, settings, info.kind)
        with progress_bar(info.grid.height, name, unit="rows", enabled=progress) as advance:
            for batch in steps(advance):
                if is_csv:
                    pixel_objects.extend(batch)
                else:
                    builder.add(batch)
    if is_csv:
        assert target is not None and image_id is not None and dstl_size is not None
        table = _write_dstl(
            target,
            pixel_objects,
            info.class_names,
            info.class_ids,
            info.grid,
            image_id,
            dstl_size,
            overwrite=overwrite,
        )
        return VectorizeResult(table, info.class_names, info.class_ids, info.grid, target)
    table = builder.table()
    if target is not None:
        if geojson and info.grid.crs is None:
            log.warning(
                "%s has no CRS: %s holds pixel coordinates (flagged in the file)", source, target
            )
        write_vectors(
            target,
            table,
            overwrite=overwrite,
            coordinate_decimals=builder.decimals if geojson else None,
            description=f"spectraseg polygons of {Path(source).name}" if geojson else None,
        )
        shown = [k for k, n in enumerate(info.class_names) if n.lower() not in BACKGROUND_NAMES]
        colours = info.class_colours or (DEFAULT_COLOUR,) * len(info.class_names)
        style = polygon_style([info.class_names[k] for k in shown], [colours[k] for k in shown])
        write_text_atomic(style_path(target), style, overwrite=overwrite)
    return VectorizeResult(table, info.class_names, info.class_ids, info.grid, target)


def style_path(target: Path) -> Path:
    """The QGIS style beside a vector file (`scene.qml` for `scene.geojson`), which QGIS
    applies when it opens the file."""
    return target.with_suffix(".qml")


def _dstl_size(
    target: Path, grid_sizes: str | os.PathLike[str] | None, image_id: str
) -> tuple[float, float]:
    if grid_sizes is None:
        raise ConfigError(
            f"{target}: a DSTL CSV needs the grid sizes (ImageId, Xmax, Ymin); "
            "pass --grid-sizes FILE."
        )
    sizes = read_grid_sizes(grid_sizes)
    if image_id not in sizes:
        raise LabelError(
            f"{grid_sizes}: no row for image {image_id!r}; pass --image-id or add its size."
        )
    return sizes[image_id]


def _object_batches(
    raster: PredictionRaster,
    settings: PostprocessSettings,
    kind: str,
) -> Callable[[Callable[[float], None]], Iterator[list[VectorObject]]]:
    """The raster's clean objects, strip by strip (background classes skipped), once given
    the progress callback; the settings are resolved (and refused) at once."""
    info = raster.info
    if kind == "mask" and settings.thresholds != AUTO:
        log.warning("%s is a mask: the thresholds given are not used", info.path)
    plan = resolve_postprocess(
        settings,
        info.class_names,
        info.grid,
        tuned_thresholds=info.tuned_thresholds,
        head=info.head,
    )
    if kind == "probabilities" and info.head == "sigmoid":
        pairs = zip(info.class_names, plan.thresholds, strict=True)
        log.info("thresholds: %s", ", ".join(f"{name} {value:g}" for name, value in pairs))
    skipped = frozenset(
        k for k, name in enumerate(info.class_names) if name.lower() in BACKGROUND_NAMES
    )

    def clean(probs: np.ndarray | None, mask: np.ndarray | None) -> np.ndarray:
        return postprocess_window(plan, probs=probs, mask=mask)

    return lambda advance: iter_object_batches(
        raster.read_rows,
        height=info.grid.height,
        width=info.grid.width,
        num_classes=len(info.class_names),
        clean=clean,
        halo_px=plan.halo_px,
        settings=settings.polygons,
        grid=info.grid,
        skip_classes=skipped,
        advance=advance,
    )


def _write_dstl(
    target: Path,
    objects: list[VectorObject],
    class_names: tuple[str, ...],
    class_ids: tuple[int, ...],
    grid: Grid,
    image_id: str,
    size: tuple[float, float],
    *,
    overwrite: bool,
) -> PolygonTable:
    """One row per class (background classes left out); returns them as a table."""
    geometries, decimals = dstl_class_geometries(
        objects, len(class_names), grid, xmax=size[0], ymin=size[1]
    )
    chosen = [k for k, name in enumerate(class_names) if name.lower() not in BACKGROUND_NAMES]
    write_wkt_csv(
        target,
        [(image_id, class_ids[k], geometries[k]) for k in chosen],
        overwrite=overwrite,
        rounding_precision=decimals,
    )
    log.info("wrote %d classes of %s to %s", len(chosen), image_id, target)
    present = [k for k in chosen if not geometries[k].is_empty]
    return PolygonTable(
        np.array([geometries[k] for k in present], dtype=object),
        {
            "class_name": np.array([class_names[k] for k in present], dtype=object),
            "class_id": np.array([class_ids[k] for k in present], dtype=np.int32),
        },
        None,
    )
