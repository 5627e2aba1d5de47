"""The built-in sample: synthetic multispectral scenes with ground truth, made from a seed.

Each scene is a small landscape (fields, woods, a river and ponds, a road network, building
blocks and the odd swimming pool) painted with plausible reflectance spectra in eight
Sentinel-2/WorldView-like bands, with mild blur and sensor noise. The classes are as imbalanced
as in real scenes: pools cover well under 2 % of the pixels. It exists so the demo, the tests
and the benchmarks run anywhere without downloading data.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from scipy import ndimage

from spectraseg.classes import ClassList, ClassSpec
from spectraseg.errors import ConfigError
from spectraseg.grid import Grid
from spectraseg.io.classes_file import save_classes

log = logging.getLogger(__name__)

INCOMPLETE_MARKER = ".sample.incomplete"

BAND_NAMES = ("coastal", "blue", "green", "red", "red_edge", "nir", "swir_1", "swir_2")

# Surface reflectance per band (BAND_NAMES order): vegetation is bright in NIR, water dark in
# NIR/SWIR, man-made surfaces bright in the visible and SWIR.
SPECTRA: dict[str, tuple[float, ...]] = {
    "grass": (0.05, 0.05, 0.08, 0.06, 0.16, 0.30, 0.22, 0.14),
    "soil": (0.09, 0.11, 0.14, 0.19, 0.23, 0.27, 0.34, 0.29),
    "crop": (0.04, 0.04, 0.09, 0.04, 0.24, 0.44, 0.24, 0.11),
    "tree": (0.03, 0.03, 0.05, 0.03, 0.17, 0.38, 0.16, 0.07),
    "water": (0.07, 0.07, 0.06, 0.035, 0.02, 0.012, 0.006, 0.004),
    "road": (0.10, 0.11, 0.12, 0.13, 0.14, 0.16, 0.21, 0.20),
    "building": (0.20, 0.22, 0.24, 0.27, 0.28, 0.30, 0.36, 0.31),
    "pool": (0.14, 0.22, 0.20, 0.07, 0.04, 0.02, 0.01, 0.008),
}

CLASSES = ClassList(
    classes=(
        ClassSpec(name="building", id=1, colour=(214, 39, 40)),
        ClassSpec(name="road", id=2, colour=(127, 127, 127)),
        ClassSpec(name="tree", id=3, colour=(44, 160, 44)),
        ClassSpec(name="crop", id=4, colour=(255, 187, 120)),
        ClassSpec(name="water", id=5, colour=(31, 119, 180)),
        ClassSpec(name="pool", id=6, colour=(23, 190, 207)),
    ),
    unmapped_values="error",
)

PIXEL_SIZE_M = 2.0
SAMPLE_CRS = CRS.from_epsg(32633)
ORIGIN = (330000.0, 5822040.0)


@dataclass(frozen=True)
class SyntheticScene:
    """One generated scene in memory: reflectance, class ids (0 = background) and grid."""

    name: str
    image: np.ndarray  # (8, H, W) float32 reflectance
    class_ids: np.ndarray  # (H, W) uint8, ids of CLASSES, 0 = background
    grid: Grid


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    field: np.ndarray = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    standardized: np.ndarray = (field - field.mean()) / (field.std() + 1e-9)
    return standardized


def _draw_line(canvas: np.ndarray, start: np.ndarray, end: np.ndarray, width: float) -> None:
    """Mark pixels within width/2 of the segment start-end."""
    height, width_px = canvas.shape
    rows, cols = np.mgrid[0:height, 0:width_px]
    direction = end - start
    length2 = float(direction @ direction) or 1.0
    t = np.clip(
        ((rows - start[0]) * direction[0] + (cols - start[1]) * direction[1]) / length2, 0, 1
    )
    distance2 = (rows - start[0] - t * direction[0]) ** 2 + (
        cols - start[1] - t * direction[1]
    ) ** 2
    canvas |= distance2 <= (width / 2) ** 2


def _landscape(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class ids (H, W) and, per pixel, which spectrum paints the background."""
    shape = (size, size)
    ids = np.zeros(shape, dtype=np.uint8)
    # Fields: a coarse random partition; about half the parcels are crops.
    parcels = rng.integers(10, 28)
    seeds = rng.uniform(0, size, (parcels, 2))
    rows, cols = np.mgrid[0:size, 0:size]
    nearest = np.argmin(
        (rows[..., None] - seeds[:, 0]) ** 2 + (cols[..., None] - seeds[:, 1]) ** 2, axis=-1
    )
    cropped = rng.random(parcels) < 0.45
    ids[cropped[nearest]] = 4
    soil = ~cropped[nearest] & (rng.random(parcels) < 0.4)[nearest]
    # Woods: smooth noise above a threshold.
    woods = _smooth_noise(rng, shape, size / 14) > 0.9
    ids[woods] = 3
    # A river across the scene and a few ponds.
    water = np.zeros(shape, dtype=bool)
    phase, amplitude = rng.uniform(0, 2 * np.pi), rng.uniform(0.05, 0.15) * size
    centre = rng.uniform(0.2, 0.8) * size
    path = centre + amplitude * np.sin(
        np.linspace(0, 2 * np.pi, size) * rng.uniform(0.6, 1.4) + phase
    )
    river_width = rng.uniform(0.015, 0.03) * size + 2
    if rng.random() < 0.5:
        water |= np.abs(rows - path[None, :]) < river_width / 2
    else:
        water |= np.abs(cols - path[:, None]) < river_width / 2
    for _ in range(rng.integers(1, 4)):
        r0, c0 = rng.uniform(0, size, 2)
        a, b = rng.uniform(0.02, 0.06, 2) * size + 2
        water |= ((rows - r0) / a) ** 2 + ((cols - c0) / b) ** 2 <= 1
    ids[water] = 5
    # Roads: a few long straight segments; buildings in rows along them; pools beside houses.
    roads = np.zeros(shape, dtype=bool)
    segments = []
    for _ in range(rng.integers(2, 5)):
        start = rng.uniform(0, size, 2)
        angle = rng.uniform(0, np.pi)
        direction = np.array([np.sin(angle), np.cos(angle)])
        start, end = start - direction * size, start + direction * size
        segments.append((start, end, direction))
        _draw_line(roads, start, end, rng.uniform(3.0, 5.5))
    ids[roads] = 2
    pools = np.zeros(shape, dtype=bool)
    buildings = np.zeros(shape, dtype=bool)
    for start, _end, direction in segments:
        normal = np.array([-direction[1], direction[0]])
        for t in np.arange(0, 2 * size, rng.uniform(14, 22)):
            if rng.random() < 0.35:
                continue
            side = 1 if rng.random() < 0.5 else -1
            along = start + direction * t
            offset = rng.uniform(7, 11)
            centre_rc = along + normal * side * offset
            half = rng.uniform(3, 6.5, 2)
            r, c = int(centre_rc[0]), int(centre_rc[1])
            if not (0 <= r < size and 0 <= c < size) or water[r, c]:
                continue
            r0, r1 = max(0, int(r - half[0])), min(size, int(r + half[0]))
            c0, c1 = max(0, int(c - half[1])), min(size, int(c + half[1]))
            buildings[r0:r1, c0:c1] = True
            if rng.random() < 0.35:
                pool_centre = along + normal * side * (offset + half.max() + 4)
                pr, pc = int(pool_centre[0]), int(pool_centre[1])
                ps = int(rng.integers(2, 4))
                if 0 <= pr - ps and pr + ps < size and 0 <= pc - ps and pc + ps < size:
                    pools[pr - ps : pr + ps, pc - ps : pc + ps] = True
    buildings &= ~roads & ~water
    ids[buildings] = 1
    pools &= ~roads & ~water & ~buildings
    ids[pools] = 6
    texture = _smooth_noise(rng, shape, 2.0)
    return ids, soil, texture


def generate_scene(seed: int, size: int = 256, index: int = 0) -> SyntheticScene:
    """One deterministic scene of `size` x `size` pixels from `seed`."""
    if size < 32:
        raise ConfigError(f"sample size {size} px is too small; use 32 or more.")
    rng = np.random.default_rng([seed, index])
    ids, soil, texture = _landscape(rng, size)
    spectra = {name: np.asarray(values, dtype=np.float32) for name, values in SPECTRA.items()}
    painted = {0: "grass", 1: "building", 2: "road", 3: "tree", 4: "crop", 5: "water", 6: "pool"}
    image = np.empty((len(BAND_NAMES), size, size), dtype=np.float32)
    image[:] = spectra["grass"][:, None, None]
    for class_id, name in painted.items():
        image[:, ids == class_id] = spectra[name][:, None]
    background_soil = soil & (ids == 0)
    image[:, background_soil] = spectra["soil"][:, None]
    # Within-class variation: per-pixel texture and per-object brightness, so no class is a
    # single colour; crops get a row pattern.
    image *= (1 + 0.08 * texture)[None].astype(np.float32)
    rows = np.arange(size)[:, None] + np.zeros((1, size))
    crop_rows = (0.06 * np.sin(rows * 1.3)).astype(np.float32)
    image[:, ids == 4] *= 1 + crop_rows[ids == 4][None]
    labelled, count = ndimage.label(ids == 1)
    if count:
        brightness = rng.uniform(0.8, 1.25, count + 1).astype(np.float32)
        image[:, ids == 1] *= brightness[labelled[ids == 1]][None]
    # Mild optical blur and sensor noise, a scene-wide illumination factor.
    image = ndimage.gaussian_filter(image, sigma=(0, 0.6, 0.6))
    image *= np.float32(rng.uniform(0.92, 1.08))
    image += rng.normal(0, 0.006, image.shape).astype(np.float32)
    image = np.clip(image, 0.0, 1.0).astype(np.float32)
    left = ORIGIN[0] + index * size * PIXEL_SIZE_M
    grid = Grid(SAMPLE_CRS, Affine(PIXEL_SIZE_M, 0, left, 0, -PIXEL_SIZE_M, ORIGIN[1]), size, size)
    return SyntheticScene(name=f"scene_{index:03d}", image=image, class_ids=ids, grid=grid)


def class_polygons(class_ids: np.ndarray, grid: Grid) -> list[tuple[str, dict[str, object]]]:
    """(class name, GeoJSON geometry) for every connected region of each class."""
    from rasterio.features import shapes

    names = {spec.id: spec.name for spec in CLASSES.classes}
    return [
        (names[int(value)], geometry)
        for geometry, value in shapes(
            class_ids, mask=class_ids > 0, transform=grid.transform, connectivity=4
        )
    ]


def write_standard(scene: SyntheticScene, out_dir: Path, *, overwrite: bool) -> None:
    """images/<scene>.tif, masks/<scene>.tif and labels/<scene>.geojson."""
    from spectraseg.io.atomic import write_text_atomic
    from spectraseg.io.geotiff import write_raster

    write_raster(
        out_dir / "images" / f"{scene.name}.tif",
        scene.image,
        scene.grid,
        band_names=BAND_NAMES,
        overwrite=overwrite,
    )
    write_raster(
        out_dir / "masks" / f"{scene.name}.tif",
        scene.class_ids,
        scene.grid,
        band_names=("class_id",),
        overwrite=overwrite,
    )
    import json

    features = [
        {"type": "Feature", "properties": {"class": name}, "geometry": geometry}
        for name, geometry in class_polygons(scene.class_ids, scene.grid)
    ]
    document = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
        "features": features,
    }
    write_text_atomic(
        out_dir / "labels" / f"{scene.name}.geojson", json.dumps(document), overwrite=overwrite
    )


# DSTL layout: the 3-band RGB image and P at full resolution, M (8 bands) at a quarter and A
# (8 SWIR bands) at an eighth of it, stored as 11-bit numbers without georeference, as in the
# competition data.
DSTL_FACTORS = {"": 1, "P": 1, "M": 4, "A": 8}
DSTL_DN_SCALE = 2047.0
DSTL_GRID_SIZE = (0.00918, -0.00904)  # Xmax, Ymin of a typical competition image


def _dstl_bands(image: np.ndarray) -> dict[str, np.ndarray]:
    band = dict(zip(BAND_NAMES, image, strict=True))
    swir = [band["swir_1"] + (band["swir_2"] - band["swir_1"]) * i / 7 for i in range(8)]
    multispectral = [
        band["coastal"],
        band["blue"],
        band["green"],
        (band["green"] + band["red"]) / 2,
        band["red"],
        band["red_edge"],
        band["nir"],
        band["nir"] * 0.95,
    ]
    pan = (band["blue"] + band["green"] + band["red"] + band["nir"]) / 4
    return {
        "": np.stack([band["red"], band["green"], band["blue"]]),
        "P": pan[None],
        "M": np.stack(multispectral),
        "A": np.stack(swir),
    }


def write_dstl(scenes: Sequence[SyntheticScene], out_dir: Path, *, overwrite: bool) -> None:
    """three_band/<id>.tif, sixteen_band/<id>_{P,M,A}.tif, train_wkt_v4.csv, grid_sizes.csv."""
    from shapely.geometry import MultiPolygon, shape
    from shapely.ops import unary_union

    from spectraseg.io.dstl import (
        pixel_to_normalized_transform,
        transform_geometry,
        write_grid_sizes,
        write_wkt_csv,
    )
    from spectraseg.io.geotiff import write_raster

    rows: list[tuple[str, int, Any]] = []
    sizes: dict[str, tuple[float, float]] = {}
    for scene in scenes:
        height, width = scene.class_ids.shape
        for suffix, bands in _dstl_bands(scene.image).items():
            factor = DSTL_FACTORS[suffix]
            if factor > 1:
                bands = bands.reshape(
                    bands.shape[0], height // factor, factor, width // factor, factor
                ).mean(axis=(2, 4))
            grid = Grid(None, Affine.identity(), bands.shape[2], bands.shape[1])
            digital = np.clip(np.round(bands * DSTL_DN_SCALE), 0, 2047).astype(np.uint16)
            folder, stem = (
                ("three_band", scene.name)
                if suffix == ""
                else ("sixteen_band", f"{scene.name}_{suffix}")
            )
            write_raster(out_dir / folder / f"{stem}.tif", digital, grid, overwrite=overwrite)
        xmax, ymin = DSTL_GRID_SIZE
        sizes[scene.name] = (xmax, ymin)
        to_normalized = pixel_to_normalized_transform(xmax, ymin, height, width)
        pixel_grid = Grid(None, Affine.identity(), width, height)
        by_class: dict[str, list[object]] = {}
        for name, geometry in class_polygons(scene.class_ids, pixel_grid):
            by_class.setdefault(name, []).append(shape(geometry))
        for spec in CLASSES.classes:
            merged = unary_union(by_class.get(spec.name, []))
            polygons = list(getattr(merged, "geoms", [merged])) if not merged.is_empty else []
            multipolygon = MultiPolygon([p for p in polygons if p.geom_type == "Polygon"])
            rows.append((scene.name, spec.id, transform_geometry(multipolygon, to_normalized)))
    write_wkt_csv(out_dir / "train_wkt_v4.csv", rows, overwrite=overwrite)
    write_grid_sizes(out_dir / "grid_sizes.csv", sizes, overwrite=overwrite)


def generate_sample(
    out_dir: str | os.PathLike[str],
    *,
    scenes: int = 4,
    size: int = 256,
    seed: int = 0,
    layout: Literal["standard", "dstl"] = "standard",
    overwrite: bool = False,
) -> Path:
    """Write `scenes` synthetic scenes and classes.yaml into `out_dir`; returns the folder."""
    if scenes < 1:
        raise ConfigError(f"--scenes {scenes}: at least one scene is needed.")
    if layout == "dstl" and size % 8:
        raise ConfigError(f"--size {size}: the DSTL layout needs a multiple of 8 (A is 1/8 scale).")
    from spectraseg.errors import OutputExistsError
    from spectraseg.io.atomic import check_writable

    folder = Path(out_dir)
    # The files of a sample are a set: a marker stands while they are written, so a run that
    # failed half-way (a full disk, a kill) is finished by the next without --overwrite.
    marker = folder / INCOMPLETE_MARKER
    finishing = marker.exists()
    if finishing:
        log.warning("%s: finishing a sample that an earlier run left unfinished", folder)
        overwrite = True
    else:
        check_writable(folder / "classes.yaml", overwrite=overwrite)
    generated = [generate_scene(seed, size, index) for index in range(scenes)]
    for scene in generated:
        log.info("%s: %s", scene.name, class_fractions_text(scene.class_ids))
    folder.mkdir(parents=True, exist_ok=True)
    marker.touch()
    try:
        if layout == "standard":
            for scene in generated:
                write_standard(scene, folder, overwrite=overwrite)
        else:
            write_dstl(generated, folder, overwrite=overwrite)
        save_classes(CLASSES, folder / "classes.yaml", overwrite=overwrite)
    except OutputExistsError:
        if not finishing:  # another data set is here: leave it as it was
            marker.unlink()
        raise
    marker.unlink()
    return folder


def class_fractions(class_ids: np.ndarray) -> dict[str, float]:
    """Share of pixels per class name, background included."""
    counts = np.bincount(class_ids.ravel(), minlength=len(CLASSES.classes) + 1) / class_ids.size
    fractions = {"background": float(counts[0])}
    fractions.update({spec.name: float(counts[spec.id]) for spec in CLASSES.classes})
    return fractions


def class_fractions_text(class_ids: np.ndarray) -> str:
    return ", ".join(f"{name} {share:.1%}" for name, share in class_fractions(class_ids).items())
