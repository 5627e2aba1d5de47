"""Where the predict path's time goes on a GPU: cProfile of `predict_raster` (reference U-Net,
window 256, overlap 0.5, TTA 8) on a generated 2048² x 20 raster, then the same run with
overviews off and with uint8 probabilities, so the writer's share shows.

    python bench/gpu_profile.py        # about 2 minutes on one GPU
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import predict_bench
from train_bench import reference_model

OUT = Path(__file__).resolve().parents[1] / "bench_out" / "gpu"


def main() -> int:
    from spectraseg.predict.raster import PredictSettings, predict_raster
    from spectraseg.predict.tiling import TilingSettings

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure.")
        return 0
    device = torch.device("cuda")
    OUT.mkdir(parents=True, exist_ok=True)
    predict_bench.DATA = OUT / "rasters"
    predict_bench.DATA.mkdir(parents=True, exist_ok=True)
    raster = predict_bench.generate_raster(2048, 2048)
    network = torch.nn.Sequential(reference_model(), torch.nn.Sigmoid()).eval().to(device)
    network.to(memory_format=torch.channels_last)
    base = PredictSettings(tiling=TilingSettings(window_px=256, overlap=0.5), tta=8)
    variants = {
        "default": {},
        "no overviews": {"overviews": False},
        "uint8 probabilities, no overviews": {"dtype": "uint8", "overviews": False},
        "no overviews, no masks": {"overviews": False, "write_mask": False},
    }
    predict_raster(network, raster, Path(tempfile.mkdtemp(dir=OUT)), settings=base, device=device)
    for name, changes in variants.items():
        settings = base.model_copy(update=changes)
        profile = cProfile.Profile() if name == "default" else None
        started = time.perf_counter()
        if profile:
            profile.enable()
        out = Path(tempfile.mkdtemp(dir=OUT))
        predict_raster(network, raster, out, settings=settings, device=device)
        if profile:
            profile.disable()
        print(f"{name}: {time.perf_counter() - started:.2f} s", flush=True)
        if profile:
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
