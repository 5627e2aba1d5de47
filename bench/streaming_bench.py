"""Training data larger than memory: peak memory and step rate of streamed training.

Generates (into bench_out/streaming, once) two data sets in the standard layout, each of
4 scenes of 8 uint16 bands with polygon labels (GeoJSON, 5 classes), written strip by strip as
tiled, compressed GeoTIFFs so that no scene is ever whole in memory:

    big     4 x 10000 x 10000 px (--smoke: 4 x 1024 x 1024), trained streamed
    small   4 x 2000 x 2000 px   (--smoke: 4 x 512 x 512), trained in memory

Each is trained in a fresh process (so one's memory does not count for the other): the data
prepared as `spectraseg train` does (streamed: `open_lazy_dataset` and
`prepare_streamed_training_data`; in memory: `load_dataset` and `prepare_training_data`), then
`--steps` optimizer steps of the sample config's U-Net (depth 4, 16 to 256 filters, 128 px
patches, batch 8) through a DataLoader with the default workers, timed after `--warmup` steps.
Printed per run: preparation seconds, steps/s, and the peak RSS of the main process, of its
DataLoader workers, and the whole process tree's PSS (sampled every 0.5 s, psutil).

    python bench/streaming_bench.py            # about 10 minutes on 2 vCPU
    python bench/streaming_bench.py --smoke    # about 2 minutes

The issue's target: the streamed run on the big set under 2 GB peak RSS, its step rate at
least 80 % of the in-memory run's on the small set.
"""

from __future__ import annotations

import os

# Before torch is imported: libgomp reads its wait policy once, when it is loaded
# (bench/train_bench.py: spin-waiting threads slow shared cores down).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import json
import logging
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe_machine, load_average

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench_out" / "streaming"

BANDS = 8
CLASSES = ("building", "road", "tree", "crop", "water")
PIXEL_M = 10.0
STRIP_ROWS = 512
DONE = "complete.txt"


# --- data ------------------------------------------------------------------------------------


def scene_polygons(rng: np.random.Generator, size: int) -> list[tuple[int, Any]]:
    """(class position, shapely polygon in pixel units) for one scene: fields and forests as
    large rectangles, lakes as buffered points, roads as long thin strips, buildings as small
    squares, so the classes are as imbalanced as real land cover."""
    import shapely

    scale = size / 1000
    polygons: list[tuple[int, Any]] = []
    for _ in range(int(60 * scale**2) + 2):  # crop fields
        x, y = rng.uniform(0, size, 2)
        w, h = rng.uniform(40, 160, 2) * max(1.0, scale / 4)
        polygons.append((3, shapely.box(x, y, x + w, y + h)))
    for _ in range(int(30 * scale**2) + 2):  # forests
        x, y = rng.uniform(0, size, 2)
        polygons.append(
            (2, shapely.Point(x, y).buffer(rng.uniform(20, 80) * max(1.0, scale / 4), 8))
        )
    for _ in range(int(6 * scale**2) + 1):  # lakes
        x, y = rng.uniform(0, size, 2)
        polygons.append((4, shapely.Point(x, y).buffer(rng.uniform(15, 50), 16)))
    for _ in range(int(4 * scale) + 1):  # roads across the scene
        if rng.integers(2):
            y = rng.uniform(0, size)
            polygons.append((1, shapely.box(0, y, size, y + 4)))
        else:
            x = rng.uniform(0, size)
            polygons.append((1, shapely.box(x, 0, x + 4, size)))
    for _ in range(int(400 * scale**2) + 4):  # buildings
        x, y = rng.uniform(0, size - 12, 2)
        side = rng.uniform(4, 12)
        polygons.append((0, shapely.box(x, y, x + side, y + side)))
    return polygons


def write_scene(folder: Path, name: str, size: int, seed: int) -> None:
    """images/<name>.tif (8 bands, uint16, tiled, deflate) and labels/<name>.geojson."""
    import rasterio
    import shapely
    from affine import Affine
    from rasterio import features

    rng = np.random.default_rng(seed)
    polygons = scene_polygons(rng, size)
    origin_x, origin_y = 500_000.0 + seed * size * PIXEL_M, 5_000_000.0
    transform = Affine(PIXEL_M, 0, origin_x, 0, -PIXEL_M, origin_y)
    to_map = (PIXEL_M, 0, 0, -PIXEL_M, origin_x, origin_y)
    # Reflectance per class (and background last) per band, in DN (reflectance x 10000).
    signature = rng.uniform(300, 4000, size=(len(CLASSES) + 1, BANDS)).astype(np.float32)
    noise = rng.normal(0, 150, size=(BANDS, 256, 256)).astype(np.float32)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": BANDS,
        "dtype": "uint16",
        "crs": "EPSG:32633",
        "transform": transform,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "zlevel": 1,
        "predictor": 2,
    }
    shapes = np.asarray([shapely.affinity.affine_transform(p, to_map) for _, p in polygons])
    values_of = np.asarray([k + 1 for k, _ in polygons])
    # Each strip burns only the polygons reaching it: GDAL converts every shape it is given.
    tree = shapely.STRtree([p for _, p in polygons])
    part = folder / "images" / f".{name}.tif.partial"
    with rasterio.open(part, "w", **profile) as out:
        for row in range(0, size, STRIP_ROWS):
            rows = min(STRIP_ROWS, size - row)
            strip = rasterio.windows.Window(0, row, size, rows)
            near = tree.query(shapely.box(0, row, size, row + rows))
            ids = np.full((rows, size), len(CLASSES) + 1, dtype=np.uint8)
            if near.size:
                ids = features.rasterize(
                    zip(shapes[near], values_of[near], strict=True),
                    out_shape=(rows, size),
                    transform=rasterio.windows.transform(strip, transform),
                    fill=len(CLASSES) + 1,
                    dtype="uint8",
                )
            values = signature[ids.astype(np.int64) - 1].transpose(2, 0, 1)
            reps = (1, -(-rows // 256), -(-size // 256))
            shift = int(rng.integers(256))
            tiled = np.tile(np.roll(noise, shift, axis=2), reps)[:, :rows, :size]
            out.write(np.clip(values + tiled, 1, 65535).astype(np.uint16), window=strip)
    part.replace(folder / "images" / f"{name}.tif")
    features_json = [
        {
            "type": "Feature",
            "properties": {"class": CLASSES[k]},
            "geometry": shapely.geometry.mapping(shapely.affinity.affine_transform(p, to_map)),
        }
        for k, p in polygons
    ]
    document = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
        "features": features_json,
    }
    (folder / "labels" / f"{name}.geojson").write_text(json.dumps(document))


def generate(folder: Path, scenes: int, size: int) -> Path:
    """The data set, unless a complete one is already there."""
    if (folder / DONE).exists():
        return folder
    from spectraseg.classes import ClassList, ClassSpec
    from spectraseg.io.classes_file import save_classes

    started = time.monotonic()
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(scenes):
        write_scene(folder, f"scene_{index}", size, seed=index)
    classes = ClassList(
        classes=tuple(ClassSpec(name=name, id=k + 1) for k, name in enumerate(CLASSES))
    )
    save_classes(classes, folder / "classes.yaml", overwrite=True)
    (folder / DONE).write_text(f"{scenes} scenes of {size} px\n")
    print(
        f"generated {folder.name}: {scenes} x {size}^2 x {BANDS} bands in "
        f"{time.monotonic() - started:.0f} s"
    )
    return folder


# --- one run, in its own process -------------------------------------------------------------


class TreePeak:
    """The largest sum of proportional set sizes (PSS: shared pages split between the processes
    sharing them, so a forked worker's copy of the parent is not counted twice) over this
    process and its children, sampled every 0.5 s."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        try:
            import psutil
        except ImportError:
            return
        me = psutil.Process()
        while not self._stop.wait(0.5):
            total = 0
            for process in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a worker that just ended
                    total += process.memory_full_info().pss
            self.peak = max(self.peak, total)


def run(data: Path, mode: str, steps: int, warmup: int) -> dict[str, Any]:
    import torch
    from torch.utils.data import DataLoader

    from spectraseg.config import load_config
    from spectraseg.data.catalog import load_dataset, open_lazy_dataset
    from spectraseg.data.dataset import prepare_training_data
    from spectraseg.data.streamed import prepare_streamed_training_data
    from spectraseg.io.rasters import limit_gdal_cache
    from spectraseg.models.registry import build_model
    from spectraseg.train.fit import default_workers
    from spectraseg.train.loop import train_one_epoch
    from spectraseg.train.losses import build_loss

    limit_gdal_cache()  # as the command line does
    config = load_config(ROOT / "configs" / "sample.yaml", ["train.seed=0"])
    batch = config.train.batch_size
    common: dict[str, Any] = {
        "data": config.data,
        "sampling": config.sampling,
        "augment_settings": config.augment,
        "size_multiple": 16,
        "patches_per_epoch": (steps + warmup) * batch,
        "seed": 0,
    }
    with TreePeak() as tree:
        started = time.monotonic()
        if mode == "streamed":
            lazy, classes = open_lazy_dataset(data)
            prepared = prepare_streamed_training_data(lazy, **common)
        else:
            scenes, classes = load_dataset(data)
            prepared = prepare_training_data(scenes, **common)
        prepare_s = time.monotonic() - started
        settings = config.model.chosen()
        torch.manual_seed(0)
        torch.set_num_threads(max(1, (os.cpu_count() or 1)))
        model = build_model(
            config.model.name, len(prepared.stats.band_names), len(classes.classes), settings
        )
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        loss_fn = build_loss(config.loss, getattr(settings, "head", "sigmoid"))
        workers = default_workers()
        loader = DataLoader(prepared.train, batch_size=batch, num_workers=workers, drop_last=True)
        times: list[float] = []
        train_one_epoch(
            model,
            loader,
            optimizer,
            loss_fn,
            device=torch.device("cpu"),
            learning_rate=lambda step: 1e-3,
            on_step=lambda loss: times.append(time.monotonic()),
        )
        timed = times[warmup:]
        rate = (len(timed) - 1) / (timed[-1] - timed[0])
    main_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "mode": mode,
        "data": data.name,
        "prepare_s": prepare_s,
        "steps": len(timed) - 1,
        "steps_per_s": rate,
        "workers": workers,
        "main_peak_mb": main_peak,
        "worker_peak_mb": worker_peak,
        "tree_peak_mb": tree.peak / 1024**2,
        "patch_px": prepared.patch_size,
    }


# --- the benchmark ---------------------------------------------------------------------------


def in_child(data: Path, mode: str, steps: int, warmup: int) -> dict[str, Any]:
    """`run` in a fresh Python process, so each run's peak memory is its own."""
    command = [
        sys.executable,
        __file__,
        "--run",
        mode,
        "--data",
        str(data),
        "--steps",
        str(steps),
        "--warmup",
        str(warmup),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{mode} run failed ({done.returncode})")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small scenes, a few steps")
    parser.add_argument("--steps", type=int, help="timed steps (default 200; smoke 20)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--run", choices=("streamed", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps = args.steps or (20 if args.smoke else 200)
    if args.run:
        logging.basicConfig(level=logging.WARNING)
        print(json.dumps(run(args.data, args.run, steps, args.warmup)))
        return
    big_px, small_px = (1024, 512) if args.smoke else (10_000, 2_000)
    label = "smoke" if args.smoke else "full"
    print(f"streaming benchmark ({label}): {describe_machine()}")
    print(f"load average before: {load_average()}")
    big = generate(OUT / f"big_{big_px}", 4, big_px)
    small = generate(OUT / f"small_{small_px}", 4, small_px)
    results = [
        (f"4 x {big_px}^2 x {BANDS} bands", in_child(big, "streamed", steps, args.warmup)),
        (f"4 x {small_px}^2 x {BANDS} bands", in_child(small, "memory", steps, args.warmup)),
    ]
    print(f"load average after: {load_average()}")
    print("\n| data set | path | preparation | steps/s | peak RSS main | workers | tree PSS |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in results:
        print(
            f"| {name} | {r['mode']} | {r['prepare_s']:.0f} s | {r['steps_per_s']:.2f} "
            f"({r['steps']} steps, {r['workers']} worker(s)) | {r['main_peak_mb']:.0f} MB "
            f"| {r['worker_peak_mb']:.0f} MB | {r['tree_peak_mb']:.0f} MB |"
        )
    streamed, memory = results[0][1], results[1][1]
    share = streamed["steps_per_s"] / memory["steps_per_s"]
    print(f"\nstreamed step rate: {share:.0%} of the in-memory one (target: at least 80%)")
    print(
        f"streamed peak memory: main process {streamed['main_peak_mb']:.0f} MB RSS, whole tree "
        f"{streamed['tree_peak_mb']:.0f} MB PSS (target: under 2048 MB)"
    )


if __name__ == "__main__":
    main()
