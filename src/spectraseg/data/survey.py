"""What a data folder holds as delivered: scenes, bands, label files and their columns.

`spectraseg init` shows this to a newcomer and writes a starting config from it, so the first
run needs no guessing: which vector file labels the scenes, which of its columns holds the
classes (OSM extracts use `fclass`, building footprints a `building` column), which bands and
resolutions each scene has, and in which CRS. Nothing in the data folder is written.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyogrio
import pyogrio.raw

from spectraseg.classes import ClassList
from spectraseg.data.catalog import data_classes, find_scenes
from spectraseg.data.delivery import top_vector_files
from spectraseg.errors import LabelError, did_you_mean
from spectraseg.io.labels import LabelSettings
from spectraseg.io.rasters import open_stack

__all__ = ["ColumnSummary", "DataSurvey", "LabelFileSummary", "SceneSummary", "survey_data"]

# Columns most often holding classes, most likely first (OSM extracts: fclass; footprints:
# building=yes; hand-made sets: class or label).
PREFERRED_COLUMNS = (
    "class", "fclass", "label", "class_name", "classname", "category", "building", "landuse",
    "type",
)  # fmt: skip
# A column with more distinct values than this is a name or an id, not a class.
MAX_CLASSES = 50


@dataclass(frozen=True)
class SceneSummary:
    """One scene: its files, bands, grid and the pixel size of each file."""

    name: str
    band_names: tuple[str, ...]
    shape: tuple[int, int]
    crs: str
    file_resolutions: tuple[tuple[str, float], ...]  # (file name, pixel size in CRS units)


@dataclass(frozen=True)
class ColumnSummary:
    """A label column that could hold classes, with its values by count (largest first)."""

    name: str
    counts: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class LabelFileSummary:
    """A vector file and the columns of it that could hold classes."""

    path: Path
    features: int
    crs: str
    columns: tuple[ColumnSummary, ...]


@dataclass(frozen=True)
class DataSurvey:
    """A data folder as found, and the labels chosen for it."""

    root: Path
    scenes: tuple[SceneSummary, ...]
    label_files: tuple[LabelFileSummary, ...]
    labels: LabelSettings
    classes: ClassList


def _columns(path: Path) -> LabelFileSummary:
    try:
        info = pyogrio.read_info(path)
        _meta, _fids, _geometry, values = pyogrio.raw.read(path, read_geometry=False)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as error:
        detail = str(error).split("\n")[0]
        raise LabelError(f"{path}: not a vector file OGR can read ({detail}).") from None
    columns = []
    for name, column in zip(info["fields"], values, strict=True):
        counts = Counter(str(v) for v in column if v is not None and str(v) not in ("", "nan"))
        # A class column repeats its values (one value in every feature: `building: yes`);
        # a column by a class column's usual name counts however few its features.
        repeats = len(counts) < max(int(info["features"]), 2) or len(counts) == 1
        known = str(name).lower() in PREFERRED_COLUMNS
        if counts and len(counts) <= MAX_CLASSES and (repeats or known):
            columns.append(ColumnSummary(str(name), tuple(counts.most_common())))
    return LabelFileSummary(
        path, int(info["features"]), str(info.get("crs") or "none"), tuple(columns)
    )


def choose_column(summary: LabelFileSummary) -> str:
    """The column most likely to hold the classes: a known name, else the fewest values."""
    by_name = {column.name: column for column in summary.columns}
    for name in PREFERRED_COLUMNS:
        if name in by_name:
            return name
    lowered = {column.name.lower(): column.name for column in summary.columns}
    for name in PREFERRED_COLUMNS:
        if name in lowered:
            return lowered[name]
    several = [c for c in summary.columns if len(c.counts) >= 2]
    if not several:
        raise LabelError(
            f"{summary.path}: no column looks like classes (a few distinct values); "
            "name it with --class-column."
        )
    covered = max(sum(n for _, n in c.counts) for c in several)
    return min(
        (c for c in several if sum(n for _, n in c.counts) == covered),
        key=lambda c: len(c.counts),
    ).name


def _scene_summary(name: str, images: tuple[Path, ...], sensor: str | None) -> SceneSummary:
    with open_stack(images, sensor=sensor) as stack:
        resolutions = tuple((p.name, round(size, 6)) for p, size in stack.file_pixel_sizes())
        crs = stack.grid.crs.to_string() if stack.grid.crs is not None else "none (pixels)"
        return SceneSummary(name, tuple(stack.band_names), stack.shape, crs, resolutions)


def survey_data(
    data_dir: str | os.PathLike[str],
    *,
    labels_file: str | os.PathLike[str] | None = None,
    column: str | None = None,
) -> DataSurvey:
    """Scenes, label files and classes of a data folder, with the label file and column chosen.

    Without `labels_file`, a single vector file at the folder's top labels every scene; of
    several, the one with the most features (the others are listed, for `--labels`). Without
    `column`, `choose_column` picks one. A `classes.yaml` in the folder gives the classes;
    otherwise they are the column's values (ids 1..K in name order, colours from a palette).
    """
    root = Path(data_dir)
    candidates = [Path(labels_file)] if labels_file is not None else []
    if not candidates and root.is_dir():
        candidates = top_vector_files(root)
    files = tuple(_columns(p if p.is_absolute() else root / p) for p in candidates)
    chosen = max(files, key=lambda f: f.features) if files else None
    settings = LabelSettings()
    if chosen is not None:
        names = [c.name for c in chosen.columns]
        if column is not None and column not in names:
            fields = pyogrio.read_info(chosen.path)["fields"]
            if column not in fields:
                raise LabelError(
                    f"{chosen.path}: no column {column!r}{did_you_mean(column, list(fields))}; "
                    "give another --class-column."
                )
        settings = LabelSettings(file=chosen.path.resolve(), column=column or choose_column(chosen))
    elif column is not None:
        settings = LabelSettings(column=column)
    sources = find_scenes(root, settings)
    classes = data_classes(root, sources, settings)
    scenes = tuple(_scene_summary(s.name, s.images, s.sensor) for s in sources)
    return DataSurvey(root, scenes, files, settings, classes)
