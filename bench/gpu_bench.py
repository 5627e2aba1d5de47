"""The GPU figures: training and prediction of the reference-size U-Net on one CUDA device.

training: the bare step (forward, loss, backward, clipping, AdamW) of the reference U-Net
    (depth 4, filters 32 to 512, 20 bands, 10 classes, 160 px patches, as in train_bench.py)
    in float32 NCHW, in `train.precision: auto` (bf16 where the GPU has it) with channels-last,
    and that compiled; then `spectraseg train`'s own path (`train_model`, the built-in sample's
    generator, 6 scenes of 512 px) for a few epochs: patches per second end to end.
prediction: `predict_raster` with the reference U-Net (window 256, overlap 0.5, TTA 8) on a
    generated 4096 x 4096 x 20 raster, in float32 and in `predict.precision: auto`: image
    Mpix/s; then case (d) of predict_bench.py on 1024^2: the straightforward NCHW float32
    implementation against the predict path, eager and compiled.

    python bench/gpu_bench.py                 # a few minutes on one GPU
    python bench/gpu_bench.py --only training

Without CUDA it says so and exits 0. Outputs go to bench_out/gpu.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import predict_bench
import predict_real
from train_bench import BANDS, CLASSES, PATCH, reference_model

OUT = Path(__file__).resolve().parents[1] / "bench_out" / "gpu"
DEVICE = torch.device("cuda")


def synchronize() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


class BareStep:
    """One training step of the reference U-Net on tensors already on the GPU."""

    def __init__(self, batch: int, precision: str, channels_last: bool, compiled: bool) -> None:
        from spectraseg.train.losses import LossSettings, build_loss
        from spectraseg.train.precision import resolve_precision

        self.model = reference_model().to(DEVICE)
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=layout)
        self.forward = torch.compile(self.model) if compiled else self.model
        self.precision = resolve_precision(precision, DEVICE)  # type: ignore[arg-type]
        self.scaler = self.precision.grad_scaler()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.loss_fn = build_loss(LossSettings(), "sigmoid")
        generator = torch.Generator(device=DEVICE).manual_seed(0)
        shape = (batch, BANDS, PATCH, PATCH)
        image = torch.randn(shape, generator=generator, device=DEVICE)
        self.image = image.contiguous(memory_format=layout)
        self.mask = torch.rand((batch, CLASSES, PATCH, PATCH), device=DEVICE) < 0.2
        self.ignore = torch.zeros((batch, PATCH, PATCH), dtype=torch.bool, device=DEVICE)
        started = time.perf_counter()
        for _ in range(3):
            self.step()
        synchronize()
        self.warmup = time.perf_counter() - started

    def step(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            loss = self.loss_fn(self.forward(self.image), self.mask, self.ignore)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def seconds_per_step(self, steps: int) -> float:
        synchronize()
        started = time.perf_counter()
        for _ in range(steps):
            self.step()
        synchronize()
        return (time.perf_counter() - started) / steps


def training(steps: int) -> dict[str, Any]:
    from spectraseg.models.unet import forward_flops_per_pixel

    flops_per_patch = 3 * forward_flops_per_pixel(reference_model(), BANDS) * PATCH * PATCH
    rows = []
    print("| variant | batch | s/step | patches/s | TFLOP/s | warm-up |\n|---|---|---|---|---|---|")
    variants = [
        ("float32, NCHW", "fp32", False, False),
        ("auto precision, channels-last", "auto", True, False),
        ("auto precision, channels-last, torch.compile", "auto", True, True),
    ]
    for batch in (8, 64):
        for name, precision, channels_last, compiled in variants:
            runner = BareStep(batch, precision, channels_last, compiled)
            seconds = runner.seconds_per_step(steps)
            rate = batch / seconds
            row = {
                "variant": name,
                "precision": runner.precision.precision,
                "batch": batch,
                "seconds_per_step": seconds,
                "patches_per_second": rate,
                "tflops": flops_per_patch * rate / 1e12,
                "warmup_seconds": runner.warmup,
            }
            rows.append(row)
            print(
                f"| {name} ({row['precision']}) | {batch} | {seconds:.4f} | {rate:.0f} | "
                f"{row['tflops']:.1f} | {runner.warmup:.1f} s |",
                flush=True,
            )
            del runner
            torch.cuda.empty_cache()
    return {"bare": rows, "train_model": whole_training()}


def whole_training(epochs: int = 4) -> dict[str, Any]:
    """`train_model` on the built-in sample's generator, on the GPU, default config."""
    from spectraseg.config import load_config
    from spectraseg.sample import generate_sample
    from spectraseg.workflow.training import train_model

    work = Path(tempfile.mkdtemp(dir=OUT))
    data = generate_sample(work / "sample", scenes=6, size=512, seed=0)
    config = load_config(
        None, [f"train.epochs={epochs}", "train.batch_size=32", "train.patches_per_epoch=1024"]
    )
    started = time.perf_counter()
    result = train_model(config, data_dir=data, out_dir=work / "run", device=DEVICE)
    seconds = time.perf_counter() - started
    patches = result.epochs * config.train.patches_per_epoch
    epoch_seconds = [float(row["seconds"]) for row in result.history if "seconds" in row]
    figure = {
        "epochs": result.epochs,
        "seconds": seconds,
        "patches_per_second": patches / seconds,
        "epoch_seconds": epoch_seconds,
        "best_score": result.best_score,
    }
    print(
        f"\ntrain_model, default config (U-Net depth 4, 16 to 256 filters, {config.data.patch_size}"
        f" px patches, batch 32), {result.epochs} epochs of {config.train.patches_per_epoch} "
        f"patches, validation and the end-of-training measurements included: {seconds:.1f} s, "
        f"{figure['patches_per_second']:.0f} patches/s; best validation mean Jaccard "
        f"{result.best_score:.3f}",
        flush=True,
    )
    return figure


def prediction(size: int) -> dict[str, Any]:
    from spectraseg.predict.raster import PredictSettings, predict_raster
    from spectraseg.predict.tiling import TilingSettings

    predict_bench.DATA = OUT / "rasters"
    predict_bench.DATA.mkdir(parents=True, exist_ok=True)
    raster = predict_bench.generate_raster(size, size)
    network = torch.nn.Sequential(reference_model(), torch.nn.Sigmoid()).eval().to(DEVICE)
    network.to(memory_format=torch.channels_last)
    rows: dict[str, Any] = {}
    print("\n| predict_raster, 4096² x 20 bands, window 256, overlap 0.5, TTA 8 | seconds | "
          "image Mpix/s | windows/s |\n|---|---|---|---|")  # fmt: skip
    for precision in ("fp32", "auto"):
        settings = PredictSettings(
            tiling=TilingSettings(window_px=256, overlap=0.5), tta=8, precision=precision
        )
        out = Path(tempfile.mkdtemp(dir=OUT))
        started = time.perf_counter()
        outputs = predict_raster(network, raster, out, settings=settings, device=DEVICE)
        seconds = time.perf_counter() - started
        windows = outputs.windows if hasattr(outputs, "windows") else None
        rows[precision] = {"seconds": seconds, "mpix_per_second": size * size / 1e6 / seconds}
        rate = f"{windows * 8 / seconds:.0f}" if windows else "—"
        print(f"| precision {precision} | {seconds:.1f} | {size * size / 1e6 / seconds:.1f} | "
              f"{rate} |", flush=True)  # fmt: skip
    predict_real.WORK = OUT
    compiled = predict_real.compile_case(
        predict_bench.generate_raster(1024, 1024), BANDS, CLASSES, DEVICE.type
    )
    print(f"\n(d) 1024², window 256, overlap 0.5, TTA 8 on {compiled['device']}: straightforward "
          f"NCHW float32 {compiled['nchw_seconds']:.2f} s; predict path in "
          f"{compiled['precision']}: eager {compiled['eager_seconds']:.2f} s "
          f"({compiled['eager_over_nchw']:.2f}x), compiled {compiled['compiled_seconds']:.2f} s "
          f"({compiled['compiled_over_nchw']:.2f}x, warm-up {compiled['warmup_seconds']:.0f} s); "
          f"largest difference from NCHW: eager {compiled['eager_difference']:.1e}, compiled "
          f"{compiled['compiled_difference']:.1e}", flush=True)  # fmt: skip
    return {"predict_raster": rows, "compile_case": compiled}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("training", "prediction"))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--size", type=int, default=4096, help="prediction raster side")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure.")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    properties = torch.cuda.get_device_properties(DEVICE)
    print(
        f"{properties.name}, {properties.total_memory / 2**30:.0f} GiB, torch {torch.__version__}"
        f", bf16 {torch.cuda.is_bf16_supported()}"
    )
    figures: dict[str, Any] = {"device": properties.name, "torch": torch.__version__}
    if args.only in (None, "training"):
        figures["training"] = training(args.steps)
    if args.only in (None, "prediction"):
        figures["prediction"] = prediction(args.size)
    with contextlib.suppress(OSError):
        (OUT / "figures.json").write_text(json.dumps(figures, indent=2, default=float))
    print(json.dumps(figures, default=float))
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    raise SystemExit(main())
