"""Find the scenes of a data folder and load each as a `Scene` with its labels on its grid.

Two layouts are recognised:

Standard (what `spectraseg sample` writes)::

    classes.yaml
    images/<scene>.tif          one multi-band raster, or images/<scene>/ holding band files
    labels/<scene>.geojson      polygons with a class column (.gpkg, .shp ... work too), and/or
    masks/<scene>.tif           a class-id, per-class or colour mask on the image grid
    labels.gpkg                 optional: one vector file serving every scene

DSTL (the competition's; any subset of the image files)::

    classes.yaml                ids are the ClassType numbers (default: the 10 ClassTypes)
    three_band/<id>.tif         RGB; sixteen_band/<id>_P.tif, <id>_M.tif, <id>_A.tif
    train_wkt_v4.csv            ImageId, ClassType, MultipolygonWKT, or the earlier release:
    train_geojson_v3/<id>/<layer>.geojson   one file per label layer (`io/dstl_geojson.py`)
    grid_sizes.csv              ImageId, Xmax, Ymin

Delivered (a product as downloaded, see `data/delivery.py`)::

    IMG_DATA/T33UUU_20170216T102101_B02.jp2 ...   band files named with a sensor's band ids
    osm_landuse.gpkg                               the vector file labelling every scene
    classes.yaml                                   optional: else the label column's values

`data.labels.file` names the vector file serving every scene in any layout (needed when a
delivered folder holds several).

Vector labels win over a mask when a scene has both (they are exact at any resolution).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import numpy as np

from spectraseg.classes import ClassList
from spectraseg.data.delivery import (
    band_file_groups,
    classes_from_labels,
    rasters_meeting,
    top_vector_files,
)
from spectraseg.data.indices import IndexSettings, add_indices
from spectraseg.data.lazy_scene import LazyScene, StackSpec, WindowLabels
from spectraseg.data.rasterize import LabelRasterizer, rasterize_geometries
from spectraseg.data.scene import Scene
from spectraseg.errors import BandError, ConfigError, DataError, LabelError, SpectrasegWarning
from spectraseg.grid import Grid
from spectraseg.io.classes_file import load_classes
from spectraseg.io.coregister import estimate_stack_shifts
from spectraseg.io.dstl_geojson import dstl_classes
from spectraseg.io.labels import (
    VECTOR_SUFFIXES,
    DstlLabels,
    LabelSettings,
    VectorLabels,
    read_area,
    read_dstl_labels,
    read_vector_labels,
)
from spectraseg.io.rasters import RASTER_SUFFIXES, list_raster_files, open_stack

log = logging.getLogger(__name__)

SceneT = TypeVar("SceneT", Scene, LazyScene)

CLASSES_FILE = "classes.yaml"
DSTL_WKT = "train_wkt_v4.csv"
DSTL_GEOJSON = "train_geojson_v3"
DSTL_GRID_SIZES = "grid_sizes.csv"
DSTL_PARTS = ("P", "M", "A")


@dataclass(frozen=True)
class SceneSource:
    """Where one scene's pixels and labels live; `find_scenes` builds these.

    Attributes:
        images: raster files stacked into the scene (one multi-band file, or band files).
        labels: a vector label file; `shared_labels` when it serves several scenes.
        mask: a raster mask on the image grid.
        dstl: (WKT CSV, grid-sizes CSV) for a DSTL image, whose id is `name`.
        sensor: a `spectraseg.io.sensors` preset naming the bands (DSTL: "dstl").
        reference: the raster whose grid the scene uses (DSTL: the 3-band image).
        labels_where_met: the shared labels label this scene only if a polygon meets it (a
            delivered folder's rasters may lie elsewhere: they are then predicted, not trained).
    """

    name: str
    images: tuple[Path, ...]
    labels: Path | None = None
    shared_labels: bool = False
    mask: Path | None = None
    dstl: tuple[Path, Path] | None = None
    sensor: str | None = None
    reference: Path | None = None
    labels_where_met: bool = False

    @property
    def has_labels(self) -> bool:
        return self.labels is not None or self.mask is not None or self.dstl is not None


def _first_with_stem(folder: Path, stem: str, suffixes: Sequence[str]) -> Path | None:
    for suffix in suffixes:
        for candidate in (folder / f"{stem}{suffix}", folder / f"{stem}{suffix.upper()}"):
            if candidate.is_file():
                return candidate
    return None


def is_dstl_layout(data_dir: Path) -> bool:
    return (data_dir / "three_band").is_dir() or (data_dir / "sixteen_band").is_dir()


def find_scenes(
    data_dir: str | os.PathLike[str], labels: LabelSettings | None = None
) -> list[SceneSource]:
    """Every scene of a data folder (standard, DSTL or delivered layout), sorted by name.

    `labels.file`, when set, labels every scene. A folder with no scene is a `DataError`
    naming what was looked for.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"{root}: no such data folder.")
    if is_dstl_layout(root):
        scenes = _find_dstl(root)
    else:
        scenes = _find_standard(root) or _find_delivered(root, labels)
    if not scenes:
        raise DataError(
            f"{root}: no scenes found. Expected images/<scene>.tif (with labels/<scene>.geojson "
            "or masks/<scene>.tif), the DSTL layout (three_band/<id>.tif) or band files named "
            "with a sensor's band ids (..._B04.jp2); `spectraseg sample DIR` writes an example."
        )
    file = labels.file if labels is not None else None
    if file is not None and not scenes[0].dstl:
        path = file if file.is_absolute() else root / file
        if not path.is_file():
            raise ConfigError(f"data.labels.file: {path}: no such label file.")
        scenes = [replace(s, labels=path, shared_labels=True, mask=None) for s in scenes]
    return scenes


def _find_delivered(root: Path, labels: LabelSettings | None) -> list[SceneSource]:
    groups = band_file_groups(root)
    vectors = top_vector_files(root)
    if len(vectors) > 1 and (labels is None or labels.file is None):
        raise DataError(
            f"{root}: {len(vectors)} vector files could label the scenes "
            f"({', '.join(p.name for p in vectors)}); name one in data.labels.file."
        )
    file = labels.file if labels is not None else None
    shared = (file if file.is_absolute() else root / file) if file is not None else None
    if shared is None and vectors:
        shared = vectors[0]
    if not groups and shared is not None and shared.is_file():
        # Single images beside their vector labels (a chip and its GeoJSON); images the labels
        # do not reach (another product in the folder) are not training data.
        groups = [(p.stem, (p,)) for p in rasters_meeting(shared, list_raster_files(root))]
    return [
        SceneSource(
            name=name,
            images=files,
            labels=shared,
            shared_labels=shared is not None,
            labels_where_met=True,
        )
        for name, files in groups
    ]


def data_classes(
    root: Path, sources: Sequence[SceneSource], labels: LabelSettings | None = None
) -> ClassList:
    """The data set's classes: `data.labels.classes_file`, the folder's classes.yaml, or the
    label column's values (delivered data).

    Raises:
        LabelError: no classes.yaml and no single vector file to read classes from.
    """
    given = labels.classes_file if labels is not None else None
    if given is not None:
        return load_classes(given if given.is_absolute() else root / given)
    listed = root / CLASSES_FILE
    if not listed.is_file() and any(s.dstl for s in sources):
        return dstl_classes()
    vectors = {s.labels for s in sources if s.labels is not None}
    if listed.is_file() or len(vectors) != 1 or any(s.mask or s.dstl for s in sources):
        return load_classes(listed)
    settings = labels or LabelSettings()
    return classes_from_labels(vectors.pop(), settings.column, settings.layer)


def _find_standard(root: Path) -> list[SceneSource]:
    images_dir = root / "images"
    if not images_dir.is_dir():
        return []
    shared = _first_with_stem(root, "labels", VECTOR_SUFFIXES)
    scenes = []
    for entry in sorted(images_dir.iterdir()):
        if entry.is_dir():
            images = tuple(list_raster_files(entry))
            name = entry.name
        elif entry.is_file() and entry.suffix.lower() in RASTER_SUFFIXES:
            images = (entry,)
            name = entry.stem
        else:
            continue
        if not images:
            continue
        own = _first_with_stem(root / "labels", name, VECTOR_SUFFIXES)
        mask = _first_with_stem(root / "masks", name, RASTER_SUFFIXES)
        scenes.append(
            SceneSource(
                name=name,
                images=images,
                labels=own or shared,
                shared_labels=own is None and shared is not None,
                mask=mask,
            )
        )
    return scenes


def _find_dstl(root: Path) -> list[SceneSource]:
    """One scene per image id found in three_band/ or sixteen_band/ (any of P, M, A).

    The scene's grid is the 3-band image's, else the first of P, M and A present: the
    finest the id has.
    """
    wkt, sizes = root / DSTL_WKT, root / DSTL_GRID_SIZES
    geojson = root / DSTL_GEOJSON
    source = wkt if wkt.is_file() else geojson if geojson.is_dir() else None
    if source is not None and not sizes.is_file():
        raise LabelError(f"{root}: {source.name} without {DSTL_GRID_SIZES}; both are needed.")
    labels = (source, sizes) if source is not None else None
    scenes = []
    for image_id in _dstl_ids(root):
        rgb = _first_with_stem(root / "three_band", image_id, RASTER_SUFFIXES)
        parts = [
            found
            for part in DSTL_PARTS
            if (
                found := _first_with_stem(
                    root / "sixteen_band", f"{image_id}_{part}", RASTER_SUFFIXES
                )
            )
        ]
        images = (rgb, *parts) if rgb is not None else tuple(parts)
        scenes.append(
            SceneSource(
                name=image_id, images=images, dstl=labels, sensor="dstl", reference=images[0]
            )
        )
    return scenes


def _dstl_ids(root: Path) -> list[str]:
    """Image ids with a raster in three_band/ (`<id>.tif`) or sixteen_band/ (`<id>_A.tif`)."""
    ids: set[str] = set()
    for folder, suffixes in (("three_band", ("",)), ("sixteen_band", DSTL_PARTS)):
        if not (root / folder).is_dir():
            continue
        for path in (root / folder).iterdir():
            if not (path.is_file() and path.suffix.lower() in RASTER_SUFFIXES):
                continue
            for part in suffixes:
                if not part:
                    ids.add(path.stem)
                elif path.stem.endswith(f"_{part}"):
                    ids.add(path.stem.removesuffix(f"_{part}"))
    return sorted(ids)


@dataclass
class _LabelCache:
    """Label files read once per data set, and which of them met a scene."""

    vectors: dict[Path, VectorLabels] = field(default_factory=dict)
    dstl: dict[Path, DstlLabels] = field(default_factory=dict)
    met: set[Path] = field(default_factory=set)


def load_scene(
    source: SceneSource,
    classes: ClassList,
    *,
    indices: Sequence[str] | IndexSettings = (),
    labels: LabelSettings | None = None,
    band_names: Sequence[str] | None = None,
    resolution: float | None = None,
    coregister: bool = False,
) -> Scene:
    """Read a scene's pixels (reflectance), add indices, rasterize its labels on its grid.

    `coregister`: estimate each file's sub-pixel shift against the reference file (scenes of
    several files only) and read the files with those shifts undone.

    A per-scene label file that meets no pixel of its scene is a `LabelError` (wrong CRS or
    wrong file); a shared one simply gives this scene no labels.
    """
    return _load_scene(
        source,
        classes,
        _LabelCache(),
        indices=indices,
        labels=labels,
        band_names=band_names,
        resolution=resolution,
        coregister=coregister,
    )


def _load_scene(
    source: SceneSource,
    classes: ClassList,
    cache: _LabelCache,
    *,
    indices: Sequence[str] | IndexSettings,
    labels: LabelSettings | None,
    band_names: Sequence[str] | None,
    resolution: float | None,
    coregister: bool = False,
) -> Scene:
    settings = labels or LabelSettings()
    index_settings = (
        indices if isinstance(indices, IndexSettings) else IndexSettings(names=tuple(indices))
    )
    shifts = None
    if coregister and len(source.images) > 1:
        shifts = estimate_stack_shifts(source.images, reference=source.reference)
    with open_stack(
        source.images,
        band_names=band_names,
        resolution=resolution,
        sensor=source.sensor,
        reference=source.reference,
        shifts_px=shifts,
    ) as stack:
        image, valid = stack.read()
        names = stack.band_names
        grid = stack.grid
    if index_settings.names:
        image, names, valid = add_indices(
            image,
            names,
            valid,
            index_settings.names,
            custom=index_settings.custom,
            source=source.name,
        )
    scene = Scene(name=source.name, image=image, valid=valid, band_names=names, grid=grid)
    if not source.has_labels:
        return scene
    mask, ignore = _scene_labels(source, classes, grid, settings, cache)
    if mask is None:
        return scene
    assert ignore is not None
    if settings.labelled_area is not None:
        area = read_area(settings.labelled_area).on_grid(grid, scene=source.name)
        ignore |= ~rasterize_geometries(area.geometries, grid)
    return scene.with_labels(mask, ignore, classes.names)


def _scene_labels(
    source: SceneSource,
    classes: ClassList,
    grid: Grid,
    settings: LabelSettings,
    cache: _LabelCache,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(mask, ignore) of a scene, or (None, None) for a DSTL image the CSV does not label."""
    labels = _scene_label_reader(source, classes, grid, settings, cache)
    if labels is None:
        return None, None
    return labels.read()


def _scene_label_reader(
    source: SceneSource,
    classes: ClassList,
    grid: Grid,
    settings: LabelSettings,
    cache: _LabelCache,
) -> WindowLabels | None:
    """A scene's labels, ready to be read for any window; None when it has none (a DSTL image
    the CSV does not label, shared labels meeting no pixel of a delivered scene)."""
    vector: VectorLabels | None = None
    if source.dstl is not None:
        wkt, sizes = source.dstl
        if wkt not in cache.dstl:
            cache.dstl[wkt] = read_dstl_labels(wkt, sizes, classes, layers=settings.dstl_layers)
        table = cache.dstl[wkt]
        if source.name not in table.rows:
            return None
        vector = table.for_image(source.name, grid)
        cache.met.add(wkt)
    elif source.labels is not None:
        if source.labels not in cache.vectors:
            cache.vectors[source.labels] = read_vector_labels(
                source.labels, classes, column=settings.column, layer=settings.layer
            )
        whole = cache.vectors[source.labels]
        vector = whole.on_grid(grid, scene=source.name)
        if not vector.is_empty:
            cache.met.add(source.labels)
        elif not source.shared_labels and not whole.is_empty:
            raise _no_overlap(source.labels, whole, [source.name])
        elif source.labels_where_met:
            return None
    if vector is not None:
        rasterizer = LabelRasterizer.from_shapes(
            vector.geometries,
            vector.class_indices,
            len(classes.classes),
            ignore_geometries=vector.ignore_geometries,
            all_touched=settings.all_touched,
        )
        return WindowLabels(grid=grid, rasterizer=rasterizer)
    assert source.mask is not None
    return WindowLabels(
        grid=grid, mask_file=source.mask, classes=classes, encoding=settings.mask_encoding
    )


def _no_overlap(path: Path, labels: VectorLabels, scenes: Sequence[str]) -> LabelError:
    shown = ", ".join(scenes[:4]) + (", ..." if len(scenes) > 4 else "")
    return LabelError(
        f"{path}: none of its {len(labels.geometries) + len(labels.ignore_geometries)} polygons "
        f"overlaps any scene ({shown}). Check the label CRS and that the labels belong to "
        "these images."
    )


def load_dataset(
    data_dir: str | os.PathLike[str],
    *,
    indices: Sequence[str] | IndexSettings = (),
    labels: LabelSettings | None = None,
    band_names: Sequence[str] | None = None,
    resolution: float | None = None,
    coregister: bool = False,
) -> tuple[list[Scene], ClassList]:
    """Every labelled scene of a data folder, in memory, and its class list.

    Scenes without any label source (DSTL images missing from the WKT CSV) are skipped with
    a note. A label file serving several scenes must meet at least one of them.
    """
    root = Path(data_dir)
    sources, classes, settings = _dataset_sources(root, labels)
    cache = _LabelCache()
    scenes: list[Scene] = []
    skipped: list[str] = []
    for source in sources:
        if not source.has_labels:
            skipped.append(source.name)
            continue
        if source.dstl is not None:
            wkt, sizes = source.dstl
            if wkt not in cache.dstl:
                cache.dstl[wkt] = read_dstl_labels(wkt, sizes, classes, layers=settings.dstl_layers)
            if source.name not in cache.dstl[wkt].rows:
                skipped.append(source.name)
                continue
        scene = _load_scene(
            source,
            classes,
            cache,
            indices=indices,
            labels=settings,
            band_names=band_names,
            resolution=resolution,
            coregister=coregister,
        )
        if scene.mask is None:
            skipped.append(source.name)
            continue
        scenes.append(scene)
    _check_found(root, sources, scenes, skipped, cache)
    _warn_unused_classes(scenes, classes, root)
    return scenes, classes


def _dataset_sources(
    root: Path, labels: LabelSettings | None
) -> tuple[list[SceneSource], ClassList, LabelSettings]:
    """The scenes of a data folder, its classes, and the label settings with paths resolved."""
    settings = labels or LabelSettings()
    sources = find_scenes(root, settings)
    classes = data_classes(root, sources, settings)
    if settings.labelled_area is not None and not settings.labelled_area.is_absolute():
        settings = settings.model_copy(update={"labelled_area": root / settings.labelled_area})
    return sources, classes, settings


def _check_found(
    root: Path,
    sources: Sequence[SceneSource],
    scenes: Sequence[Scene | LazyScene],
    skipped: Sequence[str],
    cache: _LabelCache,
) -> None:
    """Log the skipped scenes; raise when a label file met no scene, no scene has labels, or
    the scenes' band counts differ."""
    if skipped:
        log.info(
            "%s: %d scene(s) without labels skipped: %s", root, len(skipped), ", ".join(skipped[:8])
        )
    _warn_unmatched_dstl_ids(cache, {source.name for source in sources})
    for path, table in cache.vectors.items():
        if path not in cache.met and not table.is_empty:
            raise _no_overlap(path, table, [s.name for s in sources])
    if not scenes:
        raise DataError(
            f"{root}: none of the {len(sources)} scenes has labels. Add labels/<scene>.geojson, "
            f"masks/<scene>.tif, labels.gpkg or (DSTL) {DSTL_WKT} rows for them."
        )
    _check_band_counts(scenes, {source.name: source.images for source in sources})


def labelled_scene_shapes(
    data_dir: str | os.PathLike[str],
    *,
    labels: LabelSettings | None = None,
    band_names: Sequence[str] | None = None,
    resolution: float | None = None,
) -> tuple[list[tuple[int, int]], int, int]:
    """(H, W) of every scene with a label source, their raw band count and the class count,
    from the file headers alone: what choosing between in-memory and streamed training needs.
    """
    root = Path(data_dir)
    sources, classes, _ = _dataset_sources(root, labels)
    shapes: list[tuple[int, int]] = []
    bands = 0
    for source in sources:
        if not source.has_labels:
            continue
        with open_stack(
            source.images,
            band_names=band_names,
            resolution=resolution,
            sensor=source.sensor,
            reference=source.reference,
        ) as stack:
            shapes.append(stack.shape)
            bands = max(bands, stack.count)
    return shapes, bands, len(classes.classes)


def open_lazy_dataset(
    data_dir: str | os.PathLike[str],
    *,
    indices: Sequence[str] | IndexSettings = (),
    labels: LabelSettings | None = None,
    band_names: Sequence[str] | None = None,
    resolution: float | None = None,
    coregister: bool = False,
) -> tuple[list[LazyScene], ClassList]:
    """`load_dataset` without reading a pixel: every labelled scene as a `LazyScene`.

    Opening costs the label files (read once, as for `load_dataset`) and each scene's file
    headers; pixels and masks are read later, window by window. Unlike `load_dataset` it does
    not warn about classes without pixels (that needs every mask); streamed training does,
    once its pass over the training scenes has counted them.
    """
    root = Path(data_dir)
    sources, classes, settings = _dataset_sources(root, labels)
    index_settings = (
        indices if isinstance(indices, IndexSettings) else IndexSettings(names=tuple(indices))
    )
    cache = _LabelCache()
    scenes: list[LazyScene] = []
    skipped: list[str] = []
    for source in sources:
        spec = StackSpec(
            images=source.images,
            band_names=tuple(band_names) if band_names is not None else None,
            resolution=resolution,
            sensor=source.sensor,
            reference=source.reference,
            shifts_px=(
                estimate_stack_shifts(source.images, reference=source.reference)
                if coregister and len(source.images) > 1 and source.has_labels
                else None
            ),
        )
        scene = _lazy_scene(source, spec, classes, cache, index_settings, settings)
        if scene is None:
            skipped.append(source.name)
            continue
        scenes.append(scene)
    _check_found(root, sources, scenes, skipped, cache)
    return scenes, classes


def _lazy_scene(
    source: SceneSource,
    spec: StackSpec,
    classes: ClassList,
    cache: _LabelCache,
    indices: IndexSettings,
    settings: LabelSettings,
) -> LazyScene | None:
    """One scene opened lazily, or None when it has no labels."""
    if not source.has_labels:
        return None
    with spec.open() as stack:
        grid = stack.grid
        raw_names = stack.band_names
    # The index names (and the check that their bands exist) from a one-pixel image.
    _, names, _ = add_indices(
        np.zeros((len(raw_names), 1, 1), dtype=np.float32),
        raw_names,
        np.ones((1, 1), dtype=bool),
        indices.names,
        custom=indices.custom,
        source=source.name,
    )
    reader = _scene_label_reader(source, classes, grid, settings, cache)
    if reader is None:
        return None
    if settings.labelled_area is not None:
        area = read_area(settings.labelled_area).on_grid(grid, scene=source.name)
        reader = replace(reader, area=area.geometries)
    return LazyScene(
        name=source.name,
        stack=spec,
        indices=indices,
        band_names=names,
        grid=grid,
        labels=reader,
        class_names=classes.names,
    )


def _warn_unmatched_dstl_ids(cache: _LabelCache, names: set[str]) -> None:
    """DSTL labels naming images that have no raster: a warning, as users often hold only
    part of the competition's images."""
    for path, table in cache.dstl.items():
        missing = sorted(image_id for image_id in table.rows if image_id not in names)
        if missing:
            shown = ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else "")
            warnings.warn(
                f"{path}: labels {len(missing)} image(s) with no raster in three_band/ or "
                f"sixteen_band/, skipped: {shown}",
                SpectrasegWarning,
                stacklevel=3,
            )


def _check_band_counts(
    scenes: Sequence[Scene | LazyScene], files: dict[str, tuple[Path, ...]]
) -> None:
    """Every scene must have the first one's number of bands; the odd one's files are named."""
    first = scenes[0]
    for scene in scenes[1:]:
        if scene.num_bands != first.num_bands:
            raise BandError(
                f"{', '.join(str(p) for p in files[scene.name])}: scene {scene.name} has "
                f"{scene.num_bands} bands ({', '.join(scene.band_names)}) where scene "
                f"{first.name} has {first.num_bands} ({', '.join(first.band_names)}). "
                "Every training scene needs the same bands; fix or remove this scene, or set "
                "data.bands to the bands they share."
            )


def _warn_unused_classes(scenes: Sequence[Scene], classes: ClassList, root: Path) -> None:
    present = np.zeros(len(classes.classes), dtype=bool)
    for scene in scenes:
        if scene.mask is not None:
            present |= scene.mask.any(axis=(1, 2))
    missing = [name for name, seen in zip(classes.names, present, strict=True) if not seen]
    if missing:
        warnings.warn(
            f"{root}: class(es) {', '.join(missing)} have no pixel in any scene.",
            SpectrasegWarning,
            stacklevel=3,
        )


def select_classes(
    scenes: Sequence[SceneT], classes: ClassList, names: Sequence[str]
) -> tuple[list[SceneT], ClassList]:
    """The scenes and class list reduced to the classes `names`, in that order.

    Pixels of the dropped classes become background, which is what a one-vs-rest model (one of
    `spectraseg train --per-class`) needs. Scenes without labels pass through unchanged.

    Raises:
        ConfigError: a name is not a class of the data set (with a did-you-mean).
    """
    try:
        positions = [classes.index_of(name) for name in names]
    except LabelError as error:
        raise ConfigError(f"data.classes: {error} (classes.yaml lists {classes.names}).") from None
    if len(set(positions)) != len(positions):
        raise ConfigError(f"data.classes: {list(names)} names a class twice.")
    subset = classes.model_copy(update={"classes": tuple(classes.classes[p] for p in positions)})
    return [scene.keep_classes(tuple(positions), subset.names) for scene in scenes], subset
