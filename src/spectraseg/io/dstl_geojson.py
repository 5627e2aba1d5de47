# shapely ships no type information (types-shapely is not a dependency).
# mypy: disable-error-code="import-untyped"
"""The DSTL competition's earlier label release: `train_geojson_v3/<id>/<layer>.geojson`.

Before `train_wkt_v4.csv` the competition gave each training image a folder of GeoJSON files,
one per label layer of its mapping agency (`001_MM_L3_RESIDENTIAL_BUILDING.geojson`, ...), in
the same normalized coordinates as the WKT (x in [0, Xmax], y in [Ymin, 0]). The layers map to
the 10 ClassTypes by `DSTL_LAYERS`, the table the competition's forum settled on; a config may
replace it (`data.labels.dstl_layers`). Layers it does not name (and each folder's
`Grid_<id>.geojson`, the image outline) are left out, with a note.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import shape

from spectraseg.classes import ClassList, ClassSpec
from spectraseg.errors import LabelError

__all__ = ["DSTL_CLASS_NAMES", "DSTL_LAYERS", "dstl_classes", "read_geojson_rows"]

log = logging.getLogger(__name__)

DSTL_CLASS_NAMES: dict[int, str] = {
    1: "buildings",
    2: "misc_manmade_structures",
    3: "road",
    4: "track",
    5: "trees",
    6: "crops",
    7: "waterway",
    8: "standing_water",
    9: "vehicle_large",
    10: "vehicle_small",
}
"""The competition's ClassType numbers and names (what a DSTL folder without classes.yaml
trains on)."""

DSTL_LAYERS: dict[str, int] = {
    "001_MM_L2_LARGE_BUILDING": 1,
    "001_MM_L3_RESIDENTIAL_BUILDING": 1,
    "001_MM_L3_NON_RESIDENTIAL_BUILDING": 1,
    "001_MM_L5_MISC_SMALL_STRUCTURE": 2,
    "002_TR_L3_GOOD_ROADS": 3,
    "002_TR_L4_POOR_DIRT_CART_TRACK": 4,
    "002_TR_L6_FOOTPATH_TRAIL": 4,
    "006_VEG_L2_WOODLAND": 5,
    "006_VEG_L3_HEDGEROWS": 5,
    "006_VEG_L5_GROUP_TREES": 5,
    "006_VEG_L5_STANDALONE_TREES": 5,
    "007_AGR_L2_CONTOUR_PLOUGHING_CROPLAND": 6,
    "007_AGR_L6_ROW_CROP": 6,
    "008_WTR_L3_WATERWAY": 7,
    "008_WTR_L2_STANDING_WATER": 8,
    "003_VH_L4_LARGE_VEHICLE": 9,
    "003_VH_L5_SMALL_VEHICLE": 10,
    "003_VH_L6_MOTORBIKE": 10,
}
"""GeoJSON layer (file stem) -> ClassType."""

OUTLINE_PREFIX = "Grid_"


def dstl_classes() -> ClassList:
    """The 10 ClassTypes as a class list whose ids are the ClassType numbers."""
    return ClassList(
        classes=tuple(ClassSpec(name=name, id=id_) for id_, name in DSTL_CLASS_NAMES.items())
    )


def read_geojson_rows(
    folder: str | os.PathLike[str], layers: dict[str, int] | None = None
) -> dict[str, list[tuple[str, str]]]:
    """Per image id (a sub-folder), its polygons as (ClassType, WKT) rows, like the WKT CSV's.

    Raises:
        LabelError: a file that is not GeoJSON, named with the file.
    """
    table = DSTL_LAYERS if layers is None else layers
    root = Path(folder)
    rows: dict[str, list[tuple[str, str]]] = {}
    unknown: set[str] = set()
    for image in sorted(p for p in root.iterdir() if p.is_dir()):
        entries = rows.setdefault(image.name, [])
        for path in sorted(image.glob("*.geojson")):
            if path.stem.startswith(OUTLINE_PREFIX):
                continue
            class_type = table.get(path.stem)
            if class_type is None:
                unknown.add(path.stem)
                continue
            for geometry in _geometries(path):
                entries.append((str(class_type), shapely.to_wkt(geometry)))
    if unknown:
        log.info(
            "%s: layers without a ClassType left out (data.labels.dstl_layers maps them): %s",
            root,
            ", ".join(sorted(unknown)[:8]),
        )
    return rows


def _geometries(path: Path) -> list[Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        features = document.get("features", []) if isinstance(document, dict) else None
        if features is None:
            raise ValueError("not a GeoJSON feature collection")
        return [
            shape(feature["geometry"])
            for feature in features
            if isinstance(feature, dict) and feature.get("geometry")
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise LabelError(f"{path}: cannot read the GeoJSON layer ({error}).") from None
