"""Data as it is delivered: band files in a product folder, a vector file beside them.

A Sentinel-2 or Landsat download is not laid out as `images/<scene>/`: its band files sit in a
folder of the product (`IMG_DATA/T33UUU_20170216T102101_B04.jp2`, `..._SR_B5.TIF`), and the
labels are whatever vector file the user has (an OSM extract, a GeoPackage of field polygons),
with no `classes.yaml`. Users should not have to rearrange a delivery to try the tool, so:

- every folder under the data folder (a few levels deep) whose raster files are named with one
  sensor's band ids gives one scene per file-name prefix (the product's tile and date);
- the vector file at the data folder's top (or the one `data.labels.file` names, when there are
  several) serves every scene;
- without `classes.yaml`, the classes are the distinct values of the label column, in name order
  with ids 1..K (OSM's `building=yes` style, a column holding only "yes", names the class after
  the column). The run writes the list it used, so the user can copy and edit it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyogrio
import pyogrio.raw
import rasterio
from rasterio.warp import transform_bounds

from spectraseg.classes import ClassList, ClassSpec, parse_colour
from spectraseg.errors import LabelError
from spectraseg.io.labels import VECTOR_SUFFIXES
from spectraseg.io.rasters import RASTER_SUFFIXES
from spectraseg.io.sensors import SENSORS

__all__ = ["band_file_groups", "classes_from_labels", "rasters_meeting", "top_vector_files"]

log = logging.getLogger(__name__)

# How deep a product's band folder may sit (SAFE: GRANULE/<granule>/IMG_DATA).
MAX_DEPTH = 4
# tab10 then tab20's light tones: distinct colours for up to 20 derived classes.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
)  # fmt: skip


def _folders(root: Path, depth: int = 0) -> Iterator[Path]:
    yield root
    if depth >= MAX_DEPTH:
        return
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not entry.name.startswith("."):
            yield from _folders(entry, depth + 1)


def _band_prefix(path: Path) -> str | None:
    """The file name without its band id (`T33UUU_20170216T102101`), or None if it has none."""
    stem = path.name.rsplit(".", 1)[0]
    for preset in SENSORS.values():
        if preset.name == "dstl":
            continue
        for band in sorted(preset.bands, key=lambda b: -len(b.id)):
            token = band.id.upper()
            if stem.upper().endswith(token) and (
                len(stem) == len(token) or stem[-len(token) - 1] in "_-."
            ):
                return stem[: -len(token)].rstrip("_-.") or path.parent.name
    return None


def band_file_groups(root: Path) -> list[tuple[str, tuple[Path, ...]]]:
    """(scene name, band files) of every product found under `root`, sorted by name.

    A group needs two or more band files: one file named like a band is more likely a single
    image that happens to end in `_B2` than a product.
    """
    groups: dict[tuple[Path, str], list[Path]] = {}
    for folder in _folders(root):
        for path in sorted(folder.iterdir()):
            if not (path.is_file() and path.suffix.lower() in RASTER_SUFFIXES):
                continue
            prefix = _band_prefix(path)
            if prefix is not None:
                groups.setdefault((folder, prefix), []).append(path)
    found = [(prefix, tuple(files)) for (_, prefix), files in groups.items() if len(files) >= 2]
    return sorted(found)


def top_vector_files(root: Path) -> list[Path]:
    """Vector files directly in `root` (candidates for the labels of every scene)."""
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in VECTOR_SUFFIXES)


def rasters_meeting(vector: Path, rasters: Sequence[Path]) -> list[Path]:
    """The rasters whose footprint meets the vector file's extent (compared in its CRS).

    A delivery may hold rasters the labels never reach (SpaceNet's sample ships a road mask in
    degrees beside building chips in UTM); training on them would only add unlabelled pixels,
    and resampling them to the chips' resolution can fail. Rasters or labels whose extent
    cannot be read are kept, so a real error surfaces where the scene is loaded.
    """
    try:
        info = pyogrio.read_info(vector, force_total_bounds=True)
        left, bottom, right, top = (float(v) for v in info["total_bounds"])
        crs = info["crs"]
    except Exception:
        return list(rasters)
    if not all(math.isfinite(v) for v in (left, bottom, right, top)):
        return list(rasters)
    kept = []
    for path in rasters:
        try:
            with rasterio.open(path) as raster:
                bounds = raster.bounds
                if raster.crs is not None and crs is not None:
                    bounds = transform_bounds(raster.crs, crs, *bounds)
        except Exception:
            kept.append(path)
            continue
        x0, y0, x1, y1 = bounds
        if x0 <= right and x1 >= left and y0 <= top and y1 >= bottom:
            kept.append(path)
        else:
            log.info("%s: outside the extent of %s; not a scene", path, vector.name)
    return kept


def classes_from_labels(path: Path, column: str, layer: str | None = None) -> ClassList:
    """A class list from the distinct values of a label file's `column`.

    Raises:
        LabelError: the file cannot be read, lacks the column, or the column holds no value.
    """
    try:
        info = pyogrio.read_info(path, layer=layer)
        fields = [str(f) for f in info["fields"]]
        if column not in fields:
            from spectraseg.errors import did_you_mean

            raise LabelError(
                f"{path}: no column {column!r}{did_you_mean(column, fields)}. "
                "Set data.labels.column in the config."
            )
        _meta, _fids, _geometry, field_data = pyogrio.raw.read(
            path, layer=layer, columns=[column], read_geometry=False
        )
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as error:
        detail = str(error).split("\n")[0]
        raise LabelError(f"{path}: not a vector file OGR can read ({detail}).") from None
    values = sorted({str(v) for v in field_data[0] if v is not None} - {"", "None", "nan"})
    if not values:
        raise LabelError(f"{path}: column {column!r} holds no class value; write a classes.yaml.")
    if values == ["yes"]:
        specs = [ClassSpec(name=column, id=1, colour=parse_colour(PALETTE[0]), values=("yes",))]
    else:
        specs = [
            ClassSpec(name=value, id=i + 1, colour=parse_colour(PALETTE[i % len(PALETTE)]))
            for i, value in enumerate(values)
        ]
    classes = ClassList(classes=tuple(specs))
    log.info(
        "no classes.yaml: %d classes from column %r of %s (ids 1..%d in name order): %s",
        len(specs),
        column,
        path.name,
        len(specs),
        ", ".join(classes.names),
    )
    return classes
