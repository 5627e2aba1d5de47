"""One machine, one process against several: `predict --cluster local:N` and `train --devices N`.

Generates --scenes scenes of --size px, predicts them with an untrained tiny U-Net
sequentially and with `--cluster local:N` (checking the outputs agree within 1e-6), then trains
the same tiny U-Net for --epochs epochs in one process and on N gloo processes, and prints the
wall times. Startup (worker processes importing torch) is part of each figure, as it is for a
user.

    python bench/scaling_bench.py [--scenes 4] [--size 1024] [--processes 2] [--epochs 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

from spectraseg.sample import generate_sample

TINY_UNET = [
    "model.unet.depth=3",
    "model.unet.base_filters=8",
    "data.patch_size=64",
    "train.patches_per_epoch=64",
    "train.batch_size=8",
]


def spectraseg(*args: object) -> float:
    """Run the command line in a fresh process; returns its wall time in seconds."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "spectraseg", *map(str, args), "-q"], check=True)
    return time.perf_counter() - started


def largest_difference(first: Path, second: Path) -> float:
    worst = 0.0
    for path in sorted(first.glob("*_probs.tif")):
        with rasterio.open(path) as a, rasterio.open(second / path.name) as b:
            worst = max(worst, float(np.nanmax(np.abs(a.read() - b.read()))))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        data = generate_sample(root / "data", scenes=args.scenes, size=args.size, seed=0)
        overrides = [item for pair in TINY_UNET for item in ("--set", pair)]
        one_s = spectraseg(
            "train", "--data", data, "--out", root / "one", *overrides, "--epochs", args.epochs
        )
        many_s = spectraseg(
            "train",
            "--data",
            data,
            "--out",
            root / "many",
            *overrides,
            "--epochs",
            args.epochs,
            "--devices",
            args.processes,
        )
        print(
            f"train, {args.epochs} epochs: 1 process {one_s:.1f} s, "
            f"{args.processes} processes {many_s:.1f} s"
        )
        scenes = sorted((data / "images").glob("*.tif"))
        flags = ("--tta", "1")
        sequential_s = spectraseg("predict", root / "one", *scenes, "--out", root / "seq", *flags)
        cluster_s = spectraseg(
            "predict",
            root / "one",
            *scenes,
            "--out",
            root / "cluster",
            *flags,
            "--cluster",
            f"local:{args.processes}",
        )
        difference = largest_difference(root / "seq", root / "cluster")
        print(
            f"predict {len(scenes)} scenes of {args.size} px: sequential {sequential_s:.1f} s, "
            f"--cluster local:{args.processes} {cluster_s:.1f} s "
            f"(largest probability difference {difference:.1e})"
        )


if __name__ == "__main__":
    main()
