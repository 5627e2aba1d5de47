"""Speed and memory of `spectraseg predict`: window 256, overlap 50%, TTA 8.

(a) The reference-size U-Net (depth 4, filters 32 to 512, 20 bands in, 10 classes out) on a
    generated 1024 x 1024 raster: image Mpix/s, windows/s, the network's GFLOP/s next to this
    CPU's fp32 matrix-multiply GFLOP/s measured in the same run, the whole predict path against
    the same model's bare batched forward over the same windows, and peak RSS.
(b) A one-convolution stand-in (1x1, 20 -> 10) on generated rasters of 2048 x 2048,
    16384 x 2048 and 2048 x 16384 (rows x columns): the machinery's own throughput and peak
    RSS, which must not grow with the raster's height.

(c) and (d), in `predict_real.py`: the default config trained briefly on the Sentinel-2 set,
    today's settings against the new defaults on a generated raster with its bands (passes per
    pixel, seconds, peak RSS) and on the Sentinel-2 validation area (mean Jaccard); and
    `--compile` against a straightforward NCHW implementation of the same algorithm.

Each case runs in a fresh process so that its peak RSS is its own, with OMP_WAIT_POLICY=PASSIVE
as the `spectraseg` command sets it. Rasters are generated once
into bench_out/predict (20 bands, uint16, tiled, deflate) and reused.

    python bench/predict_bench.py --only a|b    # about 10 minutes on 2 cores for both
    python bench/predict_bench.py --only c --size 4096 --train-minutes 5   # about 25 minutes
    python bench/predict_bench.py --only d --compile-size 1024             # about 15 minutes
    python bench/predict_bench.py --only d --device cuda                   # on a GPU
    python bench/predict_bench.py --only d --precision bf16   # a CPU with native bf16
    python bench/predict_bench.py --only c --size 512 --train-minutes 1    # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import predict_real
from machine import cpu_model, peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench_out" / "predict"
BANDS, CLASSES = 20, 10
WINDOW, OVERLAP, TTA = 256, 0.5, 8
STANDIN_SHAPES = [(2048, 2048), (16384, 2048), (2048, 16384)]
UNET_SHAPE = (1024, 1024)


def raster_path(height: int, width: int) -> Path:
    return DATA / f"bands20_{height}x{width}.tif"


def generate_raster(height: int, width: int) -> Path:
    """A 20-band uint16 GeoTIFF of smooth patterns plus noise, written in row blocks."""
    import rasterio
    from affine import Affine
    from rasterio.crs import CRS

    path = raster_path(height, width)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".partial.tif")
    profile = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": BANDS,
        "dtype": "uint16",
        "crs": CRS.from_epsg(32631),
        "transform": Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    rng = np.random.default_rng(0)
    columns = np.arange(width)
    with rasterio.open(temporary, "w", **profile) as dataset:
        dataset.descriptions = tuple(f"b{i + 1:02d}" for i in range(BANDS))
        for top in range(0, height, 256):
            rows = np.arange(top, min(top + 256, height))[:, None]
            base = 2000 + 1000 * np.sin(rows / 97.0) * np.cos(columns / 61.0)
            block = np.empty((BANDS, len(rows), width), dtype=np.uint16)
            for band in range(BANDS):
                noise = rng.integers(0, 200, size=(len(rows), width))
                block[band] = (base * (1 + band / 20) + noise).astype(np.uint16)
            dataset.write(block, window=((top, top + len(rows)), (0, width)))
    os.replace(temporary, path)
    return path


def settings(batch_size: int | None = None):  # type: ignore[no-untyped-def]
    from spectraseg.predict.raster import PredictSettings
    from spectraseg.predict.tiling import TilingSettings

    return PredictSettings(
        tiling=TilingSettings(window_px=WINDOW, overlap=OVERLAP), tta=TTA, batch_size=batch_size
    )


def run_standin(height: int, width: int) -> dict[str, float]:
    """Case (b): the whole predict path with a 1x1 convolution, in this process."""
    import torch

    from spectraseg.predict.raster import predict_raster

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(BANDS, CLASSES, 1).eval()

    def model(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(conv(x))

    path = raster_path(height, width)
    with tempfile.TemporaryDirectory(dir=DATA) as out:
        outputs = predict_raster(model, path, out, settings=settings(), stem="standin")
    return {
        "height": height,
        "width": width,
        "windows": outputs.windows,
        "seconds": outputs.seconds,
        "windows_per_s": outputs.windows / outputs.seconds,
        "mpix_per_s": height * width / outputs.seconds / 1e6,
        "peak_rss_mb": peak_rss_mb(),
    }


def _unet_windows(path: Path, count: int):  # type: ignore[no-untyped-def]
    """The first `count` windows of the predict plan, read as the predict path reads them."""
    from spectraseg.io.rasters import open_stack
    from spectraseg.predict.inputs import read_windows
    from spectraseg.predict.tiling import plan_windows

    with open_stack(path) as stack:
        plan = plan_windows(stack.grid.height, stack.grid.width, settings().tiling)
        windows = []
        for window in read_windows(stack, plan):
            assert window is not None
            windows.append(window.image)
            if len(windows) == count:
                break
    return np.stack(windows)


def run_unet(batch_size: int | None) -> dict[str, float]:
    """Case (a): predict path, bare forward over the same windows (matmul between batches),
    predict path again.

    Other work on a shared machine makes each figure drift by several percent; interleaving
    and bracketing the measurements shows by how much.
    """
    import torch

    from spectraseg.data.augment import tta_transforms
    from spectraseg.models.unet import UNet, forward_flops_per_pixel
    from spectraseg.predict.raster import _BatchPredictor, predict_raster

    torch.manual_seed(0)
    network = UNet(BANDS, CLASSES, depth=4, base_filters=32).eval()
    flops_per_pixel = forward_flops_per_pixel(network, BANDS, WINDOW)
    network = network.to(memory_format=torch.channels_last)

    def model(x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(network(x))

    chosen = settings(batch_size)
    batch = _BatchPredictor(model, chosen, torch.device("cpu")).batch_size
    height, width = UNET_SHAPE
    path = raster_path(height, width)

    def whole_path() -> tuple[float, int]:
        with tempfile.TemporaryDirectory(dir=DATA) as out:
            outputs = predict_raster(model, path, out, settings=chosen, stem="unet")
        return outputs.seconds, outputs.windows

    first_seconds, windows = whole_path()
    rss = peak_rss_mb()

    # Bare batched forward: the same windows, already in memory as channels-last tensors,
    # through the network as often as TTA 8 calls it (no transforms, no reading, no blending).
    # A 2048² matrix multiply runs between batches, so that bursts of other load on the
    # machine hit both figures alike; the GFLOP/s are medians over the batches.
    images = torch.from_numpy(_unet_windows(path, windows))
    batches = [
        images[i : i + batch].contiguous(memory_format=torch.channels_last)
        for i in range(0, windows, batch)
    ]
    passes = len(tta_transforms(TTA))
    window_flops = flops_per_pixel * WINDOW * WINDOW
    left, right = torch.randn(2048, 2048), torch.randn(2048, 2048)
    network_rates, matmul_rates = [], []
    bare_seconds = 0.0
    with torch.inference_mode():
        model(batches[0])
        torch.mm(left, right)
        for tensor in batches:
            started = time.perf_counter()
            for _ in range(passes):
                model(tensor)
            elapsed = time.perf_counter() - started
            bare_seconds += elapsed
            network_rates.append(window_flops * len(tensor) * passes / elapsed / 1e9)
            started = time.perf_counter()
            for _ in range(3):
                torch.mm(left, right)
            matmul_rates.append(3 * 2 * 2048**3 / (time.perf_counter() - started) / 1e9)
        # Channels-first for comparison, on a few windows only.
        plain = UNet(BANDS, CLASSES, depth=4, base_filters=32).eval()
        sample = images[:batch].contiguous()
        plain(sample)
        started = time.perf_counter()
        for _ in range(2):
            plain(sample)
        plain_seconds = (time.perf_counter() - started) / 2
    del images, batches
    # The whole path again, after the bare forward: bracketing the bare figure shows how much
    # the machine's other load drifted.
    second_seconds, _ = whole_path()
    whole_seconds = (first_seconds + second_seconds) / 2
    network_gflops = float(np.median(network_rates))
    matmul = float(np.median(matmul_rates))
    plain_gflops = window_flops * batch / plain_seconds / 1e9
    return {
        "height": height,
        "width": width,
        "batch": batch,
        "windows": windows,
        "kflop_per_pixel": flops_per_pixel / 1e3,
        "whole_seconds": whole_seconds,
        "whole_first_seconds": first_seconds,
        "whole_second_seconds": second_seconds,
        "bare_seconds": bare_seconds,
        "windows_per_s": windows / whole_seconds,
        "mpix_per_s": height * width / whole_seconds / 1e6,
        "path_share_of_bare": bare_seconds / whole_seconds,
        "network_gflops": network_gflops,
        "path_gflops": window_flops * windows * passes / whole_seconds / 1e9,
        "channels_first_gflops": plain_gflops,
        "matmul_gflops": matmul,
        "network_share_of_matmul": network_gflops / matmul,
        "peak_rss_mb": rss,
    }


def child(case: str, shape: tuple[int, int], batch_size: int | None, *extra: str) -> dict[str, Any]:
    """Run one case in a fresh Python, returning what it measured."""
    command = [sys.executable, __file__, "--case", case, "--shape", f"{shape[0]}x{shape[1]}"]
    if batch_size is not None:
        command += ["--batch", str(batch_size)]
    command += extra
    # As the `spectraseg` command does: OpenMP threads that sleep at barriers instead of
    # spinning, which matters on cores shared with other work (docs/benchmarks.md, Training).
    environment = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=environment)
    if result.returncode != 0:
        raise RuntimeError(f"{case} {shape} failed:\n{result.stderr[-3000:]}")
    measured: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("a", "b", "c", "d"))
    parser.add_argument("--size", type=int, default=4096, help="(c) generated raster side")
    parser.add_argument("--train-minutes", type=float, default=5.0, help="(c) training budget")
    parser.add_argument("--retrain", action="store_true", help="(c) train again")
    parser.add_argument("--compile-size", type=int, default=1024, help="(d) raster side")
    parser.add_argument("--device", default="cpu", help="(d) cpu or cuda")
    parser.add_argument(
        "--precision", default="auto", help="(d) predict.precision of the predict path"
    )
    parser.add_argument("--batch", type=int, help="U-Net windows per batch (default: auto)")
    parser.add_argument(
        "--case",
        choices=("standin", "unet", "real", "compile", "prepare", "jaccard"),
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--raster", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--which", choices=("today", "new"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case == "prepare":
        # In a child: on Linux a process's peak RSS starts from its parent's at fork, so the
        # parent must stay small for the prediction children's figures to be their own.
        started = time.perf_counter()
        run = predict_real.train_s2(args.train_minutes, args.retrain)
        seconds = time.perf_counter() - started
        raster = predict_real.generate_s2_raster(run, args.size)
        print(json.dumps({"run": str(run), "raster": str(raster), "seconds": seconds}))
        return
    if args.case == "jaccard":
        print(json.dumps({"jaccard": predict_real.validation_jaccard(args.run, args.which)}))
        return
    if args.case == "real":
        print(json.dumps(predict_real.predict_case(args.run, args.raster, args.which)))
        return
    if args.case == "compile":
        measured = predict_real.compile_case(
            args.raster, BANDS, CLASSES, args.device, args.precision
        )
        print(json.dumps(measured))
        return
    if args.case:
        height, width = (int(v) for v in args.shape.split("x"))
        measured = run_standin(height, width) if args.case == "standin" else run_unet(args.batch)
        print(json.dumps(measured))
        return

    import torch

    print(
        f"# {cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"# window {WINDOW}, overlap {OVERLAP:.0%}, TTA {TTA}, {BANDS} bands -> {CLASSES} classes"
    )
    if args.only in (None, "b"):
        print("\n(b) one-convolution stand-in (1x1, 20 -> 10)")
        print("| raster (rows x cols) | windows | seconds | windows/s | Mpix/s | peak RSS MB |")
        print("|---|---|---|---|---|---|")
        for shape in STANDIN_SHAPES:
            generate_raster(*shape)
            m = child("standin", shape, None)
            print(
                f"| {shape[0]} x {shape[1]} | {m['windows']:.0f} | {m['seconds']:.1f} | "
                f"{m['windows_per_s']:.1f} | {m['mpix_per_s']:.2f} | {m['peak_rss_mb']:.0f} |",
                flush=True,
            )
    if args.only in (None, "a"):
        generate_raster(*UNET_SHAPE)
        m = child("unet", UNET_SHAPE, args.batch)
        print(
            f"\n(a) reference U-Net (depth 4, 32 -> 512 filters, {m['kflop_per_pixel']:.0f} "
            f"kFLOP/px), {UNET_SHAPE[0]} x {UNET_SHAPE[1]}, batch {m['batch']:.0f}, "
            "channels-last, fp32"
        )
        rows = [
            ("windows", f"{m['windows']:.0f}"),
            (
                "whole predict path, mean of 2 runs",
                f"{m['whole_seconds']:.1f} s ({m['whole_first_seconds']:.1f} s before the bare "
                f"forward, {m['whole_second_seconds']:.1f} s after), {m['windows_per_s']:.2f} "
                f"windows/s, {m['mpix_per_s']:.3f} image Mpix/s",
            ),
            ("bare batched forward, same windows x 8", f"{m['bare_seconds']:.1f} s"),
            ("whole path / bare forward throughput", f"{m['path_share_of_bare']:.1%}"),
            ("network GFLOP/s, bare forward (median of batches)", f"{m['network_gflops']:.0f}"),
            ("network GFLOP/s (whole path)", f"{m['path_gflops']:.0f}"),
            ("network GFLOP/s channels-first", f"{m['channels_first_gflops']:.0f}"),
            ("fp32 matmul GFLOP/s, 2048², between the batches", f"{m['matmul_gflops']:.0f}"),
            ("network / matmul", f"{m['network_share_of_matmul']:.1%}"),
            ("peak RSS", f"{m['peak_rss_mb']:.0f} MB"),
        ]
        print("| measure | value |\n|---|---|")
        for name, value in rows:
            print(f"| {name} | {value} |", flush=True)
    if args.only == "c":
        real_model_case(args.size, args.train_minutes, args.retrain)
    if args.only == "d":
        compile_case(args.compile_size, args.device, args.precision)
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")


def real_model_case(size: int, minutes: float, retrain: bool) -> None:
    """(c): today's settings against the new defaults with a model trained on Sentinel-2."""
    options = ["--size", str(size), "--train-minutes", str(minutes)]
    prepared = child("prepare", (size, size), None, *options, *(["--retrain"] * retrain))
    run, raster = Path(prepared["run"]), Path(prepared["raster"])
    print(f"\n(c) default config, {minutes:g} min on Sentinel-2 ({run}), "
          f"{prepared['seconds']:.0f} s to train or reuse")  # fmt: skip
    from spectraseg.train.checkpoint import load_checkpoint

    card = load_checkpoint(run).card
    print(f"# edge margin {card.edge_margin_px} px, TTA Jaccard {card.tta_jaccard}")
    scene = predict_real.s2_data_folder() / "images" / "T33UUU"
    figures = {}
    for which in ("today", "new"):
        args = ("--run", str(run), "--which", which)
        big = child("real", (size, size), None, *args, "--raster", str(raster))
        child("real", (size, size), None, *args, "--raster", str(scene))
        jaccard = child("jaccard", (size, size), None, *args)["jaccard"]
        figures[which] = (big, jaccard)
    print(f"| settings | passes/pixel | windows | seconds ({size}²) | peak RSS MB | "
          "val. mean Jaccard |\n|---|---|---|---|---|---|")  # fmt: skip
    for which, label in (("today", "--window patch --overlap 0.5 --tta 8"), ("new", "defaults")):
        m, jaccard = figures[which]
        print(
            f"| {label} | {m['passes_per_pixel']:.2f} | {m['windows']:.0f} | {m['seconds']:.1f} |"
            f" {m['peak_rss_mb']:.0f} | {jaccard:.4f} |",
            flush=True,
        )
    speedup = figures["today"][0]["seconds"] / figures["new"][0]["seconds"]
    change = figures["new"][1] - figures["today"][1]
    print(f"# new defaults {speedup:.2f}x faster; Jaccard {change:+.4f}")


def compile_case(size: int, device: str = "cpu", precision: str = "auto") -> None:
    """(d): compiled predict path against a straightforward NCHW implementation."""
    generate_raster(size, size)
    raster = str(raster_path(size, size))
    options = ("--raster", raster, "--device", device, "--precision", precision)
    m = child("compile", (size, size), None, *options)
    print(
        f"\n(d) reference U-Net, window 256, overlap 0.5, TTA 8, {size}², one process, on "
        f"{m['device']} (predict path in {m['precision']}; the NCHW reference in float32)"
    )
    print("| implementation | seconds | image Mpix/s | vs NCHW |\n|---|---|---|---|")
    for name, key in (
        ("straightforward NCHW (one window at a time)", "nchw_seconds"),
        ("predict_raster, eager channels-last", "eager_seconds"),
        ("predict_raster, --compile (after warm-up)", "compiled_seconds"),
    ):
        print(
            f"| {name} | {m[key]:.1f} | {m['mpix'] / m[key]:.3f} | "
            f"{m['nchw_seconds'] / m[key]:.2f}x |",
            flush=True,
        )
    print(f"# compile warm-up {m['warmup_seconds']:.1f} s; largest difference in probability "
          f"from the NCHW result: eager {m['eager_difference']:.1e}, "
          f"compiled {m['compiled_difference']:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
