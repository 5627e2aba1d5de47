"""Label rasterization throughput and peak memory on a large scene, window by window.

Generates a layer of --polygons rotated rectangles and discs (5 classes, 4-60 px wide) over a
--size x --size scene at 1 m, writes it to a GeoPackage in --workdir, reads it back through
`read_vector_labels`, then rasterizes it window by window through `LabelRasterizer` while
building the streamed `ClassPixelIndex`. Prints polygons/s, Mpix/s and the process's peak RSS,
which must stay under 1 GB: nothing scene-sized is ever held.

    python bench/labels_bench.py [--size 10000] [--polygons 60000] [--window 1024]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyogrio.raw
import shapely
from affine import Affine
from rasterio.crs import CRS

from machine import cpu_model, peak_rss_mb
from spectraseg.classes import ClassList, ClassSpec
from spectraseg.data.rasterize import ClassPixelIndex, LabelRasterizer, rasterize_windows
from spectraseg.grid import Grid
from spectraseg.io.labels import read_vector_labels

NUM_CLASSES = 5
LIMIT_MB = 1024


def generate_layer(grid: Grid, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(geometries, class names): rotated rectangles and 12-gon discs spread over the grid."""
    rng = np.random.default_rng(seed)
    left, bottom, right, top = grid.bounds
    centres = rng.uniform((left, bottom), (right, top), (count, 2))
    half_width = rng.uniform(2, 30, count)
    half_length = half_width * rng.uniform(1, 3, count)
    angle = rng.uniform(0, np.pi, count)
    discs = rng.random(count) < 0.3
    # Rectangles: 4 corners; discs: 12 points on a circle (a closed ring repeats the first).
    steps = np.linspace(0, 2 * np.pi, 13)[:-1]
    unit = np.stack([np.cos(steps), np.sin(steps)], axis=1)  # (12, 2)
    corners = np.array([(-1, -1), (1, -1), (1, 1), (-1, 1)], dtype=np.float64)
    geometries = np.empty(count, dtype=object)
    rotation = np.stack(
        [np.stack([np.cos(angle), -np.sin(angle)], 1), np.stack([np.sin(angle), np.cos(angle)], 1)],
        axis=1,
    )  # (N, 2, 2)
    rect = corners[None] * np.stack([half_length, half_width], 1)[:, None, :]
    rect = np.einsum("nij,nkj->nki", rotation, rect) + centres[:, None, :]
    disc = unit[None] * half_width[:, None, None] + centres[:, None, :]
    geometries[~discs] = shapely.polygons(rect[~discs])
    geometries[discs] = shapely.polygons(disc[discs])
    names = np.array([f"class_{i}" for i in rng.integers(0, NUM_CLASSES, count)], dtype=object)
    return geometries, names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=10000, help="scene width and height, px")
    parser.add_argument("--polygons", type=int, default=60000)
    parser.add_argument("--window", type=int, default=1024, help="window side, px")
    parser.add_argument("--block", type=int, default=32, help="class index block side, px")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)

    grid = Grid(CRS.from_epsg(32633), Affine(1, 0, 300000, 0, -1, 5900000), args.size, args.size)
    classes = ClassList(
        classes=tuple(ClassSpec(name=f"class_{i}", id=i + 1) for i in range(NUM_CLASSES))
    )
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="spectraseg-labels-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"labels_{args.size}_{args.polygons}.gpkg"

    start = time.perf_counter()
    if not path.exists():
        geometries, names = generate_layer(grid, args.polygons, seed=0)
        pyogrio.raw.write(
            path, shapely.to_wkb(geometries), [names], ["class"], driver="GPKG",
            geometry_type="Polygon", crs="EPSG:32633",
        )  # fmt: skip
        del geometries, names
    generated = time.perf_counter() - start

    start = time.perf_counter()
    labels = read_vector_labels(path, classes).on_grid(grid)
    rasterizer = LabelRasterizer.from_shapes(labels.geometries, labels.class_indices, NUM_CLASSES)
    loaded = time.perf_counter() - start

    start = time.perf_counter()
    index = ClassPixelIndex.from_windows(
        rasterize_windows(rasterizer, grid, window_px=args.window),
        NUM_CLASSES, grid.shape, block_px=args.block,
    )  # fmt: skip
    rasterized = time.perf_counter() - start

    pixels = grid.width * grid.height
    shares = index.pixel_counts / pixels
    peak = peak_rss_mb()
    print(f"machine      : {cpu_model()}, {platform.python_version()}, {sys.platform}")
    print(f"scene        : {grid.width} x {grid.height} px, window {args.window} px, "
          f"{len(labels.geometries)} polygons, {NUM_CLASSES} classes")  # fmt: skip
    print(f"generate     : {generated:.1f} s (GeoPackage written once to {path})")
    print(f"read+index   : {loaded:.1f} s ({len(labels.geometries) / loaded:,.0f} polygons/s)")
    speed = f"{len(labels.geometries) / rasterized:,.0f} polygons/s"
    throughput = f"{pixels / rasterized / 1e6:.1f} Mpix/s"
    print(f"rasterize    : {rasterized:.1f} s, {speed}, {throughput} (incl. class pixel index)")
    print(f"class shares : {', '.join(f'{s:.2%}' for s in shares)}")
    print(f"peak RSS     : {peak:.0f} MB (limit {LIMIT_MB} MB)")
    return 0 if peak < LIMIT_MB else 1


if __name__ == "__main__":
    raise SystemExit(main())
