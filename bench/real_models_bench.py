"""The default U-Net, FC-DenseNet 56 and the random forest on the real sets, same CPU budget.

Each model trains with `train.max_minutes` on the set's run config (`configs/sentinel2-osm.yaml`,
`configs/spacenet-buildings.yaml`): one scene each, so the split holds out a block along the
scene's long side with a gap of half a patch that training patches never enter. The table is
the per-class Jaccard (threshold 0.5) on that held-out block at each model's best epoch, as
`history.csv` records it; the networks must beat the forest on the mean.

    python bench/real_models_bench.py                    # 20 minutes per network and set
    python bench/real_models_bench.py --minutes 0.2 --sets spacenet --smoke   # a smoke run

Outputs go to bench_out/real_models/<set>/<model>/ (run folders) and results.md. Needs
../shared/data beside the project. The load average is printed: the figures only mean something
on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from pathlib import Path

# Before torch is imported: libgomp reads its wait policy once, when it is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
SETS = {
    "sentinel2": ROOT / "configs" / "sentinel2-osm.yaml",
    "spacenet": ROOT / "configs" / "spacenet-buildings.yaml",
}
MODELS: dict[str, list[str]] = {
    "unet": [],
    "fc-densenet-56": ["model.name=fc-densenet", "model.fc_densenet.preset=56"],
    "random-forest": ["model.name=random-forest"],
}
# A smoke run checks the script end to end, not the models: tiny epochs and networks.
SMOKE = [
    "train.patches_per_epoch=8",
    "train.epochs=1",
    "model.unet.depth=3",
    "model.unet.base_filters=4",
    "model.fc_densenet.down_blocks=[1, 1]",
    "model.fc_densenet.growth_rate=4",
    "model.fc_densenet.first_filters=8",
    "model.random_forest.trees=4",
    "model.random_forest.max_pixels=5000",
    "data.split.max_windows=4",
]


def best_row(run: Path) -> dict[str, str]:
    """The history row of the best epoch (highest validation mean Jaccard)."""
    with (run / "history.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return max(rows, key=lambda row: float(row["val_jaccard"] or "nan"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="training budget per model")
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=sorted(SETS))
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--smoke", action="store_true", help="tiny epochs and networks")
    parser.add_argument("--out", type=Path, default=ROOT / "bench_out" / "real_models")
    args = parser.parse_args()

    from spectraseg.config import load_config
    from spectraseg.workflow.training import train_model

    print(f"load average before: {os.getloadavg()}")
    lines = ["| set | model | mean Jaccard | per class | epochs | minutes |", "| --- " * 6 + "|"]
    for name in args.sets:
        config_path = SETS[name]
        for model, overrides in MODELS.items():
            if model not in args.models:
                continue
            extra = [f"train.max_minutes={args.minutes}", *overrides]
            config = load_config(config_path, [*(SMOKE if args.smoke else []), *extra])
            data = config.run.data
            if data is None:
                raise SystemExit(f"{config_path}: names no run.data")
            data = data if data.is_absolute() else config_path.parent / data
            if not data.is_dir():
                print(f"{name}: {data} is absent; skipped", file=sys.stderr)
                break
            out = args.out / name / model
            started = time.monotonic()
            result = train_model(config, data_dir=data, out_dir=out, overwrite=True)
            minutes = (time.monotonic() - started) / 60
            row = best_row(out)
            classes = {k.removeprefix("jaccard_"): v for k, v in row.items() if k[:8] == "jaccard_"}
            shown = ", ".join(f"{k} {float(v):.2f}" for k, v in classes.items() if v != "nan")
            score = float(row["val_jaccard"])
            lines.append(
                f"| {name} | {model} | {score:.3f} | {shown} | {result.epochs} | {minutes:.1f} |"
            )
            print(lines[-1], flush=True)
            if math.isnan(score):
                print(f"{name} {model}: no validation score", file=sys.stderr)
    print(f"load average after: {os.getloadavg()}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
