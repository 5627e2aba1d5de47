"""Rasterizing one polygon of many vertices: GDAL's fill in one call vs split into halves.

GDAL's polygon fill visits every edge for every chunk of rows it burns, and with the block
cache capped as the command line caps it (`limit_gdal_cache`) the chunks are small: one call
costs about rows x vertices;
`rasterize_geometries` halves the grid while a half's polygons have more than
`SPLIT_VERTICES` vertices. Builds a ragged ring of --vertices vertices over a --size x --size
grid, burns it both ways, checks that the pixels agree and prints both times and the peak RSS.

    python bench/heavy_polygon_bench.py [--size 2048] [--vertices 1000000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import shapely
from affine import Affine
from rasterio import features

from machine import peak_rss_mb
from spectraseg.data.rasterize import rasterize_geometries
from spectraseg.grid import Grid
from spectraseg.io.rasters import limit_gdal_cache


def ragged_ring(size: int, vertices: int) -> shapely.Polygon:
    """A disc over most of the grid whose edge zig-zags, crossing each row many times."""
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    radius = 0.44 * size + 0.01 * size * np.sin(angles * 5000)
    centre = size / 2
    return shapely.Polygon(
        np.column_stack([centre + radius * np.cos(angles), centre + radius * np.sin(angles)])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--vertices", type=int, default=1_000_000)
    args = parser.parse_args()
    limit_gdal_cache()  # as the command line does
    grid = Grid(None, Affine.identity(), width=args.size, height=args.size)
    polygon = ragged_ring(args.size, args.vertices)

    started = time.perf_counter()
    split = rasterize_geometries([polygon], grid)
    split_s = time.perf_counter() - started

    started = time.perf_counter()
    whole = features.rasterize(
        [(polygon, 1)], out_shape=grid.shape, transform=grid.transform, dtype="uint8"
    ).astype(bool)
    whole_s = time.perf_counter() - started

    assert np.array_equal(split, whole), "split and whole rasterization disagree"
    print(f"{args.vertices} vertices on {args.size} x {args.size} px")
    print(f"one GDAL call: {whole_s:.1f} s; split into halves: {split_s:.1f} s")
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
