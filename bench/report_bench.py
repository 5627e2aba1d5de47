"""A report of one very large scene: its size on disk, its build time and its peak memory.

Reports show large scenes downsampled (a bounded number of pixels per figure), so the page of a
20000 x 20000 scene should be a few MB and build in memory that does not grow with the scene.
This writes a --size x --size scene (4 bands), its truth (class ids beside a classes.yaml) and a
prediction of it (uint8 probabilities and a 0/1 mask per class, as `spectraseg predict --dtype
uint8` writes them) row block by row block, then runs `spectraseg evaluate` (which writes
report.html) and `spectraseg report` in fresh processes and prints each one's time and peak RSS.

    python bench/report_bench.py [--size 20000] [--out bench_out/report]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from affine import Affine

from machine import describe_machine, load_average
from spectraseg.classes import ClassList, ClassSpec
from spectraseg.grid import Grid
from spectraseg.io.classes_file import save_classes
from spectraseg.io.geotiff import RasterWriter
from spectraseg.io.prediction_raster import (
    encode_probabilities,
    mask_writer,
    output_paths,
    probabilities_writer,
)

CLASSES = ClassList(
    classes=(
        ClassSpec(name="building", id=1, colour=(220, 60, 60)),
        ClassSpec(name="water", id=2, colour=(40, 90, 220)),
    )
)
ROWS = 512  # rows written per block: memory stays one block of the full width


def pattern(rows: slice, size: int) -> np.ndarray:
    """Class ids of a block of rows: buildings on a grid of squares, a river crossing it."""
    y, x = np.mgrid[rows, 0:size]
    ids = np.zeros(y.shape, np.uint8)
    ids[((x // 300) % 3 == 0) & ((y // 300) % 3 == 0)] = 1
    ids[np.abs(x - y - size // 7) < size // 40] = 2
    return ids


def write_inputs(out: Path, size: int) -> tuple[Path, Path, Path]:
    """The scene, its truth and a prediction that is the truth smeared a little, row by row."""
    grid = Grid(
        crs="EPSG:32633", transform=Affine(10, 0, 500000, 0, -10, 6000000), width=size, height=size
    )
    images, truth, predictions = out / "data" / "images", out / "data" / "masks", out / "pred"
    for folder in (images, truth, predictions):
        folder.mkdir(parents=True, exist_ok=True)
    save_classes(CLASSES, out / "data" / "classes.yaml")
    probs_path, mask_path = output_paths(predictions, "scene")
    names = CLASSES.names
    rng = np.random.default_rng(0)
    with (
        RasterWriter(images / "scene.tif", grid, 4, "uint16", overwrite=True) as image,
        RasterWriter(truth / "scene.tif", grid, 1, "uint8", overwrite=True) as labels,
        probabilities_writer(
            probs_path, grid, names, (0.5, 0.5), head="sigmoid", dtype="uint8", cog=False,
            overwrite=True, class_ids=CLASSES.ids,
        ) as probs,
        mask_writer(
            mask_path, grid, names, (0.5, 0.5), head="sigmoid", cog=False, overwrite=True,
            class_ids=CLASSES.ids,
        ) as mask,
    ):  # fmt: skip
        for top in range(0, size, ROWS):
            rows = slice(top, min(top + ROWS, size))
            ids = pattern(rows, size)
            onehot = np.stack([ids == 1, ids == 2]).astype(np.float32)
            noisy = np.clip(0.8 * onehot + rng.normal(0.1, 0.15, onehot.shape), 0, 1)
            base = 800 + 400 * ids.astype(np.uint16)
            image.write_rows(np.stack([base + 100 * b for b in range(4)]).astype(np.uint16), top)
            labels.write_rows(ids[None], top)
            probs.write_rows(encode_probabilities(noisy.astype(np.float32), "uint8"), top)
            mask.write_rows((noisy > 0.5).astype(np.uint8), top)
    return out / "data", predictions, truth


def timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of a command run in a fresh process (its own rusage)."""
    start = time.perf_counter()
    process = subprocess.Popen(command)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)}: exit {process.returncode}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=20000, help="scene side in pixels")
    parser.add_argument("--out", type=Path, default=Path("bench_out/report"))
    args = parser.parse_args()
    print(describe_machine(), "| load", load_average())
    shutil.rmtree(args.out, ignore_errors=True)
    start = time.perf_counter()
    data, predictions, truth = write_inputs(args.out, args.size)
    print(f"inputs: {args.size} x {args.size} px written in {time.perf_counter() - start:.0f} s")
    spectraseg = [sys.executable, "-m", "spectraseg", "-q"]
    evaluation = args.out / "evaluation"
    seconds, peak = timed(
        [*spectraseg, "evaluate", "--pred", str(predictions), "--truth", str(truth),
         "--out", str(evaluation)]
    )  # fmt: skip
    report = evaluation / "report.html"
    print(f"evaluate (scores + report.html): {seconds:.1f} s, peak RSS {peak:.0f} MB")
    print(f"  report.html {report.stat().st_size / 1e6:.2f} MB")
    again = args.out / "again.html"
    seconds, peak = timed(
        [*spectraseg, "report", str(evaluation), "--data", str(data), "--out", str(again)]
    )
    print(f"report alone: {seconds:.1f} s, peak RSS {peak:.0f} MB")
    print(f"  {again.name} {again.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
