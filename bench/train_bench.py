"""Training quality on the built-in sample, and training speed of the reference-size U-Net.

quality: the default config on the built-in sample (6 scenes of 256 px, split by scene) under a
    5-minute budget: best validation mean Jaccard (threshold 0.5 and tuned), epochs and wall
    time, per-class Jaccard; the random-forest baseline on the same split beside it.
speed: the reference-size U-Net (depth 4, filters 32 to 512, 20 bands, 10 classes, 160 x 160
    patches, batch 8). The bare forward/backward/step on tensors already in memory, channels
    first, channels last and compiled, as GFLOP/s (training = 3 x forward FLOPs) against this
    CPU's fp32 matrix-multiply GFLOP/s measured in the same run; and the whole pipeline (patch
    sampling, augmentation, DataLoader with the default workers on the same cores, forward,
    backward, step) against the bare step of the same layout.

    python bench/train_bench.py quality      # about 6 minutes on 2 cores
    python bench/train_bench.py speed        # about 4 minutes on 2 cores
    python bench/train_bench.py              # both

Outputs go to bench_out/train. The load average is printed before and after each part: the
figures only mean something on an otherwise idle machine.

OMP_WAIT_POLICY=PASSIVE is set (unless already set) before torch loads its OpenMP runtime: on
2 cores shared with a DataLoader worker or any other process, OpenMP's default spin-waiting
made each training step 2 to 6 times slower in our measurements (docs/benchmarks.md).
"""

from __future__ import annotations

import os

# Before torch is imported: libgomp reads its wait policy once, when it is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import logging
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench_out" / "train"

BANDS, CLASSES, PATCH, BATCH = 20, 10, 160, 8


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} vCPU, torch {torch.__version__}, {platform.python_version()}"


def load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


# --- quality ---------------------------------------------------------------------------------


def quality(minutes: float, scenes: int, size: int) -> None:
    from spectraseg.config import load_config
    from spectraseg.sample import generate_sample
    from spectraseg.workflow.training import train_model

    data = OUT / f"sample_{scenes}x{size}"
    if not (data / "classes.yaml").exists():
        generate_sample(data, scenes=scenes, size=size, seed=0, overwrite=True)
    print(f"quality: {scenes} scenes of {size} px, load average {load()}")
    rows = []
    for name, overrides in (
        ("U-Net (default config)", [f"train.max_minutes={minutes}"]),
        ("random forest", ["model.name=random-forest"]),
    ):
        config = load_config(None, overrides)
        started = time.monotonic()
        result = train_model(
            config,
            data_dir=data,
            out_dir=OUT / ("unet" if "U-Net" in name else "forest"),
            overwrite=True,
        )
        seconds = time.monotonic() - started
        best = next(row for row in result.history if row["epoch"] == result.best_epoch)
        per_class = {
            key.removeprefix("jaccard_"): float(value)
            for key, value in best.items()
            if key.startswith("jaccard_")
        }
        reached = [row for row in result.history if float(row["val_jaccard"]) >= 0.6]
        if reached:
            print(
                f"{name}: mean Jaccard >= 0.6 after {reached[0]['seconds']} s of training "
                f"(epoch {reached[0]['epoch']})"
            )
        rows.append((name, result, seconds, best, per_class))
    print(f"load average after: {load()}")
    print("\n| model | mean Jaccard @0.5 | tuned thresholds | epochs | wall time |")
    print("| --- | --- | --- | --- | --- |")
    for name, result, seconds, best, _ in rows:
        print(
            f"| {name} | {result.best_score:.3f} | {float(best['val_jaccard_tuned']):.3f} "
            f"| {result.epochs} (best {result.best_epoch}, {result.stopped}) "
            f"| {seconds / 60:.1f} min |"
        )
    classes = list(rows[0][4])
    print("\n| model | " + " | ".join(classes) + " |")
    print("| --- |" + " --- |" * len(classes))
    for name, _, _, _, per_class in rows:
        print(f"| {name} | " + " | ".join(f"{per_class[c]:.3f}" for c in classes) + " |")


# --- speed -----------------------------------------------------------------------------------


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(2):
        a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def reference_model() -> torch.nn.Module:
    from spectraseg.models.unet import UNet, UNetSettings

    torch.manual_seed(0)
    return UNet(BANDS, CLASSES, UNetSettings(depth=4, base_filters=32, max_filters=512))


class BareSteps:
    """Forward, backward and AdamW step of the reference U-Net on tensors already in memory."""

    def __init__(self, *, channels_last: bool, compiled: bool) -> None:
        from spectraseg.train.losses import LossSettings, build_loss

        self.model = reference_model()
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=memory_format)
        self.step_model = torch.compile(self.model) if compiled else self.model
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.loss_fn = build_loss(LossSettings(), "sigmoid")
        generator = torch.Generator().manual_seed(0)
        image = torch.randn(BATCH, BANDS, PATCH, PATCH, generator=generator)
        self.image = image.contiguous(memory_format=memory_format)
        self.mask = torch.rand(BATCH, CLASSES, PATCH, PATCH, generator=generator) < 0.2
        self.ignore = torch.zeros(BATCH, PATCH, PATCH, dtype=torch.bool)
        started = time.perf_counter()
        for _ in range(2):  # allocator warm-up, and the compile when compiled
            self.step()
        self.warmup = time.perf_counter() - started

    def step(self) -> float:
        """Seconds of one training step."""
        started = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.step_model(self.image), self.mask, self.ignore)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.optimizer.step()
        loss.item()
        return time.perf_counter() - started


def synthetic_scenes(count: int = 3, size: int = 512) -> list:
    """20-band scenes with 10 blocky, partly overlapping classes (multi-label)."""
    from affine import Affine
    from scipy import ndimage

    from spectraseg.data.scene import Scene
    from spectraseg.grid import Grid

    rng = np.random.default_rng(0)
    scenes = []
    for index in range(count):
        image = ndimage.gaussian_filter(
            rng.normal(size=(BANDS, size, size)).astype(np.float32), sigma=(0, 3, 3)
        )
        noise = ndimage.gaussian_filter(rng.normal(size=(CLASSES, size, size)), sigma=(0, 8, 8))
        # Class shares from 20% down to 1%, as imbalanced as real scenes.
        shares = np.geomspace(0.2, 0.01, CLASSES)
        cut = np.array([np.quantile(noise[k], 1 - shares[k]) for k in range(CLASSES)])
        mask = noise > cut[:, None, None]
        scenes.append(
            Scene(
                name=f"bench_{index}",
                image=image,
                valid=np.ones((size, size), dtype=bool),
                band_names=tuple(f"b{i:02d}" for i in range(BANDS)),
                grid=Grid(None, Affine.identity(), size, size),
                mask=mask,
                ignore=np.zeros((size, size), dtype=bool),
                class_names=tuple(f"class_{k}" for k in range(CLASSES)),
            )
        )
    return scenes


class PipelineSteps:
    """The real training path: class-balanced patches, D4 + gain + noise, default DataLoader
    workers on the same cores, channels last, `train_one_epoch` with loss, clipping, AdamW."""

    def __init__(self, steps: int) -> None:
        from torch.utils.data import DataLoader

        from spectraseg.data.augment import AugmentSettings
        from spectraseg.data.dataset import prepare_training_data
        from spectraseg.data.sampling import SamplingSettings
        from spectraseg.data.settings import DataSettings
        from spectraseg.train.fit import TrainSettings, default_workers
        from spectraseg.train.losses import LossSettings, build_loss

        self.settings = TrainSettings(batch_size=BATCH)
        self.data = prepare_training_data(
            synthetic_scenes(),
            data=DataSettings(patch_size=PATCH),
            sampling=SamplingSettings(),
            augment_settings=AugmentSettings(d4=True, gain=0.05, noise_std=0.02),
            size_multiple=16,
            patches_per_epoch=BATCH * (steps + 4),
            seed=0,
        )
        self.model = reference_model()
        self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.loss_fn = build_loss(LossSettings(), "sigmoid")
        self.workers = default_workers()
        started = time.perf_counter()
        loader = DataLoader(
            self.data.train, batch_size=BATCH, num_workers=self.workers, drop_last=True
        )
        self.batches = iter(loader)
        next(self.batches)
        # Once per epoch: forking the workers and waiting for the first batch.
        self.first_batch = time.perf_counter() - started
        for _ in range(2):
            self.step()

    def step(self) -> float:
        """Seconds of one training step, the wait for its batch included."""
        from spectraseg.train.loop import train_one_epoch

        started = time.perf_counter()
        batch = next(self.batches)
        train_one_epoch(
            self.model,
            [batch],
            self.optimizer,
            self.loss_fn,
            device=torch.device("cpu"),
            learning_rate=lambda step: 1e-3,
            clip_norm=self.settings.grad_clip_norm,
            channels_last=True,
        )
        return time.perf_counter() - started


def speed(steps: int, compile_too: bool) -> None:
    from spectraseg.models.unet import forward_flops_per_pixel
    from spectraseg.train.fit import TrainSettings

    torch.set_num_threads(os.cpu_count() or 1)
    print(
        f"speed: {machine()}, {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, load average {load()}"
    )
    flops = 3 * forward_flops_per_pixel(reference_model(), BANDS) * PATCH * PATCH * BATCH
    print(
        f"reference U-Net: {flops / 3 / (PATCH * PATCH * BATCH) / 1e3:.0f} kFLOP/px forward, "
        f"{flops / 1e9:.0f} GFLOP per training step of {BATCH} x {PATCH}^2"
    )
    bare: dict[str, BareSteps] = {
        "channels first": BareSteps(channels_last=False, compiled=False),
        "channels last": BareSteps(channels_last=True, compiled=False),
    }
    if compile_too:
        bare["channels last + torch.compile"] = BareSteps(channels_last=True, compiled=True)
    pipeline = PipelineSteps(steps)
    times: dict[str, list[float]] = {name: [] for name in [*bare, "whole pipeline"]}
    gemm: list[float] = []
    # Variants alternate step by step, so a burst of load from elsewhere hits them all alike.
    for _ in range(steps):
        gemm.append(matmul_gflops(repeats=4))
        for name, runner in bare.items():
            times[name].append(runner.step())
        times["whole pipeline"].append(pipeline.step())
    matmul = float(np.median(gemm))
    print(f"fp32 matrix multiply (2048^2): {matmul:.0f} GFLOP/s (median of {steps})")
    for name, values in times.items():
        seconds = float(np.median(values))
        rate = flops / seconds / 1e9
        extra = f", warm-up {bare[name].warmup:.0f} s" if name in bare else ""
        print(
            f"{name}: {seconds:.2f} s/step (median of {steps}), {rate:.0f} GFLOP/s "
            f"= {rate / matmul:.0%} of matmul{extra}"
        )
    reference = float(np.median(times["channels last"]))
    whole = float(np.median(times["whole pipeline"]))
    # Worker start-up happens once per epoch: spread it over the default epoch's steps.
    per_epoch = TrainSettings().patches_per_epoch // BATCH
    amortized = whole + pipeline.first_batch / per_epoch
    print(
        f"whole pipeline ({pipeline.workers} DataLoader worker(s), channels last) vs the bare "
        f"channels-last step: {reference / whole:.0%}; with worker start-up "
        f"({pipeline.first_batch:.2f} s per epoch of {per_epoch} steps): "
        f"{reference / amortized:.0%}"
    )
    print(f"load average after: {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", nargs="?", choices=("quality", "speed", "both"), default="both")
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=16, help="timed steps per variant")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.part in ("quality", "both"):
        quality(args.minutes, args.scenes, args.size)
    if args.part in ("speed", "both"):
        speed(args.steps, compile_too=not args.no_compile)


if __name__ == "__main__":
    main()
