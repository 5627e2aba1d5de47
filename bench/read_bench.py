"""Windowed reading throughput and peak memory on a large generated scene.

Writes (once, into --workdir) a 10000 x 10000 x 8 uint16 GeoTIFF and a mixed-resolution stack of
the same extent (4 bands at 10 m, 3 at 20 m, 1 at 60 m), then reads each window by window
through `open_stack`, printing Mpix/s and the process's peak RSS. Peak RSS must stay under 1 GB.

    python bench/read_bench.py [--size 10000] [--window 1024] [--workdir /tmp/spectraseg-bench]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from machine import cpu_model, peak_rss_mb
from spectraseg.grid import Grid
from spectraseg.io.geotiff import RasterWriter
from spectraseg.io.rasters import limit_gdal_cache, open_stack

STRIP = 500


def write_synthetic(path: Path, size: int, bands: int, resolution: float) -> None:
    """Smooth synthetic bands with mild noise, written strip by strip (bounded memory)."""
    if path.exists():
        return
    pixels = round(size * 10 / resolution)
    grid = Grid(
        CRS.from_epsg(32633), Affine(resolution, 0, 300000, 0, -resolution, 5900000), pixels, pixels
    )
    rng = np.random.default_rng(0)
    cols = np.arange(pixels, dtype=np.float32)
    with RasterWriter(
        path, grid, bands, "uint16", band_names=[f"b{i}" for i in range(bands)]
    ) as out:
        for row in range(0, pixels, STRIP):
            rows = np.arange(row, min(row + STRIP, pixels), dtype=np.float32)[:, None]
            base = 2000 + 800 * np.sin(rows / 97.0) * np.cos(cols / 131.0)
            strip = np.stack([base * (1 + 0.1 * b) for b in range(bands)])
            strip += rng.integers(0, 16, strip.shape)
            out.write_rows(strip.astype(np.uint16), row)


def read_all(paths: list[Path], window_px: int) -> tuple[float, int]:
    started = time.perf_counter()
    with open_stack(paths) as stack:
        height, width = stack.shape
        for row in range(0, height, window_px):
            for col in range(0, width, window_px):
                stack.read(
                    Window(col, row, min(window_px, width - col), min(window_px, height - row))
                )
        pixels = height * width
        count = stack.count
    elapsed = time.perf_counter() - started
    return pixels / elapsed / 1e6, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/spectraseg-bench"))
    parser.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    limit_gdal_cache()
    args.workdir.mkdir(parents=True, exist_ok=True)
    single = args.workdir / f"single_{args.size}.tif"
    mixed = [args.workdir / f"mixed_{args.size}_{name}.tif" for name in ("10m", "20m", "60m")]
    if args.prepare_only:
        write_synthetic(single, args.size, 8, 10.0)
        for path, bands, resolution in zip(mixed, (4, 3, 1), (10.0, 20.0, 60.0), strict=True):
            write_synthetic(path, args.size, bands, resolution)
        print(f"writer peak RSS {peak_rss_mb():.0f} MB")
        return
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    started = time.perf_counter()
    # Inputs are written by a child process so that this one's peak RSS is the reading alone.
    command = [sys.executable, __file__, "--prepare-only", "--size", str(args.size)]
    subprocess.run([*command, "--workdir", str(args.workdir)], check=True)
    print(f"inputs ready in {time.perf_counter() - started:.0f} s")
    rate, count = read_all([single], args.window)
    print(
        f"single file, {args.size}^2 x {count} bands, {args.window}^2 windows: {rate:.1f} Mpix/s "
        f"({rate * count:.0f} Mband-pixels/s); peak RSS {peak_rss_mb():.0f} MB"
    )
    rate, count = read_all(mixed, args.window)
    print(
        f"mixed 10/20/60 m stack, {args.size}^2 x {count} bands on the 10 m grid: "
        f"{rate:.1f} Mpix/s "
        f"({rate * count:.0f} Mband-pixels/s); peak RSS {peak_rss_mb():.0f} MB"
    )
    print(f"peak RSS {peak_rss_mb():.0f} MB (target < 1024 MB)")


if __name__ == "__main__":
    main()
