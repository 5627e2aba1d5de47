# shapely ships no type information (types-shapely is not a dependency).
# mypy: disable-error-code="import-untyped"
"""Pair predicted scenes with their truth, and read the truth on the prediction's grid.

Pairing: `--pred` and `--truth` are each a file or a folder. Scene names are file names without
extension and without `_probs` / `_mask`; when a scene has both a mask and probabilities the
mask is used (it carries the thresholds `predict` applied). A single truth file pairs with a
single predicted scene whatever the names; a single vector truth file (one GeoPackage for a
whole region) serves every predicted scene it overlaps.

Truth: rasters (class ids, one band per class or colours, see `io.masks.read_mask`) are read
on the prediction's grid, resampled by nearest neighbour when needed; pixels outside the truth
raster are ignored. Vector truth is reprojected and rasterized on the prediction's grid. Grids
that cannot be reconciled (one georeferenced and the other not, pixel rasters of different
sizes, no overlap) are errors.

Classes: `--classes FILE`, else the first `classes.yaml` found beside the truth or in its
parent folder, else the prediction's class names in order (ids 1..K).
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from spectraseg.classes import ClassList, ClassSpec
from spectraseg.data.delivery import classes_from_labels
from spectraseg.data.rasterize import rasterize_classes, rasterize_geometries
from spectraseg.errors import DataError, LabelError, RasterError, did_you_mean
from spectraseg.grid import Grid
from spectraseg.io.labels import VectorLabels, is_vector_file, read_vector_labels
from spectraseg.io.masks import read_mask
from spectraseg.io.prediction_raster import scene_name
from spectraseg.io.rasters import RASTER_SUFFIXES, is_virtual, open_dataset

log = logging.getLogger(__name__)

CLASSES_FILE = "classes.yaml"


@dataclass(frozen=True)
class ScenePair:
    """One predicted scene and its truth file (shared by several scenes when `shared`)."""

    name: str
    prediction: Path
    truth: Path
    shared: bool = False


def _files(folder: Path, *, vectors: bool) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and not p.name.startswith(".")
        and (p.suffix.lower() in RASTER_SUFFIXES or (vectors and is_vector_file(p)))
    )


def find_predictions(path: str | os.PathLike[str], *, prefer_mask: bool = True) -> dict[str, Path]:
    """Scene name -> prediction raster; the `_mask` file when a scene also has `_probs`
    (the `_probs` file with `prefer_mask=False`, for scoring after post-processing)."""
    source = Path(path)
    if not is_virtual(source) and not source.exists():
        raise RasterError(f"{source}: no such prediction file or folder.")
    files = _files(source, vectors=False) if source.is_dir() else [source]
    found: dict[str, Path] = {}
    for file in files:
        name = scene_name(file)
        wanted = "_mask" if prefer_mask else "_probs"
        if name not in found or file.name.split(".")[0].endswith(wanted):
            found[name] = file
    if not found:
        raise RasterError(f"{source}: no prediction rasters ({', '.join(RASTER_SUFFIXES)}) in it.")
    return found


def find_truths(path: str | os.PathLike[str]) -> dict[str, Path]:
    """Scene name -> truth file (raster or vector) in a folder, or the one file given."""
    source = Path(path)
    if not is_virtual(source) and not source.exists():
        raise LabelError(f"{source}: no such truth file or folder.")
    files = _files(source, vectors=True) if source.is_dir() else [source]
    found: dict[str, Path] = {}
    for file in files:
        name = scene_name(file)
        # A raster is exact on its grid; prefer it to a vector of the same scene.
        if name not in found or (is_vector_file(found[name]) and not is_vector_file(file)):
            found[name] = file
    if not found:
        raise LabelError(f"{source}: no truth rasters or vector files in it.")
    return found


def pair_scenes(
    prediction: str | os.PathLike[str],
    truth: str | os.PathLike[str],
    *,
    prefer_mask: bool = True,
) -> list[ScenePair]:
    """Predicted scenes with their truth, by name (see the module notes for single files)."""
    predictions = find_predictions(prediction, prefer_mask=prefer_mask)
    truth_path = Path(truth)
    if truth_path.is_file() or is_virtual(truth_path):
        if is_vector_file(truth_path):
            shared = len(predictions) > 1
            return [ScenePair(n, p, truth_path, shared) for n, p in sorted(predictions.items())]
        if len(predictions) > 1:
            raise DataError(
                f"{truth_path}: one truth raster for {len(predictions)} predicted scenes; give a "
                "folder of truth rasters named like the scenes, or one prediction."
            )
        ((name, path),) = predictions.items()
        return [ScenePair(name, path, truth_path)]
    truths = find_truths(truth_path)
    if (Path(prediction).is_file() or is_virtual(prediction)) and len(truths) == 1:
        ((name, path),) = predictions.items()
        return [ScenePair(name, path, next(iter(truths.values())))]
    pairs = [ScenePair(n, p, truths[n]) for n, p in sorted(predictions.items()) if n in truths]
    unmatched = sorted(set(predictions) - set(truths))
    if not pairs:
        first = unmatched[0] if unmatched else ""
        raise DataError(
            f"{prediction} and {truth_path}: no scene names in common (predicted: "
            f"{', '.join(sorted(predictions)[:5])}; truth: {', '.join(sorted(truths)[:5])})"
            f"{did_you_mean(first, sorted(truths)) if first else ''}."
        )
    if unmatched:
        log.warning(
            "no truth for %d predicted scene(s), not scored: %s",
            len(unmatched),
            ", ".join(unmatched[:10]),
        )
    return pairs


def find_classes_file(truth: str | os.PathLike[str]) -> Path | None:
    """classes.yaml beside the truth (inside it, for a folder) or in the parent folder."""
    source = Path(truth)
    folder = source if source.is_dir() else source.parent
    for candidate in (folder / CLASSES_FILE, folder.parent / CLASSES_FILE):
        if candidate.is_file():
            return candidate
    return None


def classes_from_names(names: tuple[str, ...]) -> ClassList:
    """A class list for names alone: ids 1..K in order."""
    return ClassList(classes=tuple(ClassSpec(name=n, id=i + 1) for i, n in enumerate(names)))


def with_truth_values(classes: ClassList, truth: Path, column: str) -> ClassList:
    """`classes` with the values a vector truth's `column` gives them when no classes file
    says more, by the rule training uses without a classes.yaml
    (`data/delivery.classes_from_labels`): a column holding only "yes" (`building: yes`) is
    one class named after the column. So the truth a model was trained on scores and shows
    it without a hand-written classes.yaml. Other truths and classes are returned as given.
    """
    if not is_vector_file(truth):
        return classes
    derived = _classes_by_rule(truth, truth.stat().st_mtime_ns, column)
    if derived is None:
        return classes  # reading the truth itself says what is wrong, with its own hint
    specs = [
        spec.model_copy(update={"values": derived[spec.name].values})
        if spec.name in derived and not spec.values
        else spec
        for spec in classes.classes
    ]
    return classes.model_copy(update={"classes": tuple(specs)})


@functools.lru_cache(maxsize=8)
def _classes_by_rule(truth: Path, mtime_ns: int, column: str) -> dict[str, ClassSpec] | None:
    """Once per file version: scenes sharing one truth file read its column once."""
    del mtime_ns  # part of the cache key only
    try:
        return {c.name: c for c in classes_from_labels(truth, column).classes}
    except LabelError:
        return None


def class_positions(
    evaluated: tuple[str, ...], truth_classes: ClassList, *, where: str
) -> list[int]:
    """Where each evaluated class sits in the truth's class list, or a did-you-mean error."""
    positions = []
    for name in evaluated:
        if name not in truth_classes.names:
            raise LabelError(
                f"{where}: predicted class {name!r} is not a truth class"
                f"{did_you_mean(name, truth_classes.names)}. Rename it in the classes file, or "
                "pass --classes with the prediction's class names."
            )
        positions.append(truth_classes.names.index(name))
    missing = [n for n in truth_classes.names if n not in evaluated]
    if missing:
        log.warning("%s: truth class(es) %s not predicted; not scored", where, ", ".join(missing))
    return positions


def _check_reconcilable(path: Path, grid: Grid) -> None:
    """Refuse a truth raster whose grid cannot be put on the prediction's, in one line."""
    with open_dataset(path) as dataset:
        own_crs = dataset.crs if not dataset.transform.is_identity else None
        bounds = tuple(dataset.bounds)
        shape = (dataset.height, dataset.width)
    if own_crs is None and grid.crs is None:
        if shape != grid.shape:
            raise RasterError(
                f"{path}: truth is {shape[1]} x {shape[0]} px and the prediction "
                f"{grid.width} x {grid.height} px, both without CRS: the grids cannot be "
                "reconciled. Give the truth the prediction's size."
            )
        return
    if (own_crs is None) != (grid.crs is None):
        side = "truth" if own_crs is None else "prediction"
        raise RasterError(
            f"{path}: the {side} has no CRS and the other has one ({grid.describe()}): the grids "
            "cannot be reconciled. Georeference both or neither."
        )
    assert own_crs is not None and grid.crs is not None
    left, bottom, right, top = transform_bounds(own_crs, grid.crs, *bounds, densify_pts=21)
    footprint = shapely.box(left, bottom, right, top)
    if footprint.intersection(shapely.box(*grid.bounds)).area <= 0:
        raise RasterError(
            f"{path}: the truth raster does not overlap the prediction ({grid.describe()}): "
            "the grids cannot be reconciled. Check that they show the same place."
        )


def _footprint(path: Path, grid: Grid) -> np.ndarray:
    """(h, w) bool: pixels of `grid` (a whole prediction grid or a band of its rows) inside the
    truth raster's extent."""
    with open_dataset(path) as dataset:
        own_crs = dataset.crs if not dataset.transform.is_identity else None
        bounds = tuple(dataset.bounds)
    if own_crs is None or grid.crs is None:
        return np.ones(grid.shape, dtype=bool)
    left, bottom, right, top = transform_bounds(own_crs, grid.crs, *bounds, densify_pts=21)
    return rasterize_geometries([shapely.box(left, bottom, right, top)], grid)


class TruthSource:
    """A truth file read on a prediction's grid one band of rows at a time, so scoring a scene
    holds one band of it in memory, not the scene.

    Checks that can be made once (the grids can be reconciled, polygons fall on the grid) are
    made when it is built.
    """

    def __init__(
        self,
        path: Path,
        grid: Grid,
        classes: ClassList,
        *,
        column: str = "class",
        vectors: VectorLabels | None = None,
    ) -> None:
        """
        Args:
            vectors: the already-read labels of a vector file shared by several scenes.
        """
        self.path, self.grid, self.classes = path, grid, classes
        self._placed: VectorLabels | None = None
        if is_vector_file(path):
            labels = vectors or read_vector_labels(
                path, classes, column=column, column_hint="Pass --class-column NAME."
            )
            self._placed = labels.on_grid(grid, scene=str(path))
            if not labels.is_empty and self._placed.is_empty and vectors is None:
                raise LabelError(
                    f"{path}: none of its polygons falls on the prediction's grid "
                    f"({grid.describe()}); check that they show the same place and their CRS."
                )
        else:
            _check_reconcilable(path, grid)

    def read_rows(self, row_off: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """(mask (K, rows, W) bool, ignore (rows, W) bool) of rows `row_off` onwards."""
        window = Window(0, row_off, self.grid.width, rows)
        band = self.grid.window(window)
        if self._placed is not None:
            placed = self._placed
            mask = rasterize_classes(
                placed.geometries, placed.class_indices, band, len(self.classes.classes)
            )
            return mask, rasterize_geometries(placed.ignore_geometries, band)
        covered = _footprint(self.path, band)
        mask, ignore = read_mask(self.path, self.classes, self.grid, window=window)
        mask &= covered[None]
        return mask, ignore | ~covered


def load_truth(
    path: Path,
    grid: Grid,
    classes: ClassList,
    *,
    column: str = "class",
    vectors: VectorLabels | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(mask (K, H, W) bool, ignore (H, W) bool) of a truth file on `grid`, K = the classes.

    Args:
        vectors: the already-read labels of a vector file shared by several scenes.
    """
    source = TruthSource(path, grid, classes, column=column, vectors=vectors)
    return source.read_rows(0, grid.height)
