"""The default U-Net, FC-DenseNet 56 and the random forest on the real sets, same CPU budget.

Each model trains with `train.max_minutes` on the set's run config (`configs/sentinel2-osm.yaml`,
`configs/spacenet-buildings.yaml`): one scene each, so the split holds out a block along the
scene's long side with a gap of half a patch that training patches never enter. The table is
the per-class Jaccard (threshold 0.5) on that held-out block at each model's best epoch, as
`history.csv` records it; the networks must beat the forest on the mean.

The sparse-label case (`sentinel2-sparse`) trains on a third of the OSM polygons (every third
polygon of each class by feature id, so every class keeps polygons), written to a GeoJSON file
that is both `data.labels.file` and `data.labels.labelled_area`: only pixels inside those
polygons are labelled, and the head is left to training's choice. Each model is then scored on
the held-out block against all the polygons, in two ways: inside the mapped area (pixels in any
polygon; OSM's unmapped land is not a class) and over the whole block (unmapped pixels as
background). Its validation score during training only sees the third.

    python bench/real_models_bench.py                    # 20 minutes per network and set
    python bench/real_models_bench.py --minutes 0.2 --sets spacenet --smoke   # a smoke run
    python bench/real_models_bench.py --minutes 0.2 --sets sentinel2-sparse --smoke

Outputs go to bench_out/real_models/<set>/<model>/ (run folders) and results.md. Needs
../shared/data beside the project. The load average is printed: the figures only mean something
on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

# Before torch is imported: libgomp reads its wait policy once, when it is loaded.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
SETS = {
    "sentinel2": ROOT / "configs" / "sentinel2-osm.yaml",
    "sentinel2-sparse": ROOT / "configs" / "sentinel2-osm.yaml",
    "spacenet": ROOT / "configs" / "spacenet-buildings.yaml",
}
# The sparse case keeps one polygon in SPARSE_EVERY of each class.
SPARSE_SETS = {"sentinel2-sparse"}
SPARSE_EVERY = 3
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


def third_of_polygons(source: Path, column: str, out: Path) -> Path:
    """Every SPARSE_EVERY-th polygon of each class (by feature id) as a GeoJSON file."""
    import numpy as np
    import pyogrio
    import shapely

    meta, fids, geometry, fields = pyogrio.raw.read(source, columns=[column], return_fids=True)
    classes = fields[0]
    keep = np.zeros(len(fids), dtype=bool)
    for name in sorted(set(classes)):
        members = np.flatnonzero(classes == name)
        members = members[np.argsort(fids[members], kind="stable")]
        keep[members[::SPARSE_EVERY]] = True
    features = [
        {
            "type": "Feature",
            "properties": {column: str(classes[i])},
            "geometry": json.loads(shapely.to_geojson(shapely.from_wkb(geometry[i]))),
        }
        for i in np.flatnonzero(keep)
    ]
    crs = meta["crs"]
    document = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": crs}},
        "features": features,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document))
    print(f"sparse labels: {keep.sum()} of {len(fids)} polygons of {source.name} in {out}")
    return out


def score_against_all_polygons(
    run: Path, data: Path, config: Any, polygons: Path, out: Path
) -> dict[str, Any]:
    """The run's best model on its held-out block, against the truth of every polygon.

    Returns the mean and per-class Jaccard inside the mapped area (pixels in any polygon) and
    the mean over the whole block (unmapped pixels as background), the model's own head rule
    at threshold 0.5 as in the other rows.
    """
    from spectraseg.data.catalog import load_dataset
    from spectraseg.data.split import held_out_from_record
    from spectraseg.io.prediction_raster import PredictionRaster
    from spectraseg.models.head import class_masks
    from spectraseg.predict.load_model import load_model
    from spectraseg.predict.raster import predict_raster
    from spectraseg.train.metrics import ClassCounts, mean_over_present

    loaded = load_model(run)
    card = loaded.card
    everything = config.data.labels.model_copy(update={"file": polygons, "labelled_area": polygons})
    scenes, classes = load_dataset(data, labels=everything, resolution=config.data.resolution)
    if tuple(classes.names) != tuple(card.class_names):
        raise SystemExit(
            f"classes {classes.names} of all polygons != the model's {card.class_names}"
        )
    record = json.loads((run / "split.json").read_text())
    areas = held_out_from_record(record, where=str(run / "split.json"))
    mapped = ClassCounts.zeros(len(classes.names))
    block = ClassCounts.zeros(len(classes.names))
    for scene in scenes:
        if scene.name not in areas or scene.mask is None:
            continue
        _, area = areas[scene.name]
        outputs = predict_raster(loaded, data / "IMG_DATA", out, overwrite=True, stem=scene.name)
        raster = PredictionRaster(outputs.probabilities)
        probs, _ = raster.read_rows(0, scene.shape[0])
        assert probs is not None
        predicted = class_masks(probs, [0.5] * len(classes.names), card.head)
        outside = ~area.mask(scene.shape) | ~scene.valid
        mapped.add(predicted, scene.mask, outside | scene.ignored())
        block.add(predicted, scene.mask, outside)
    per_class = mapped.jaccard()
    return {
        "head": card.head,
        "mapped": mean_over_present(per_class),
        "per_class": dict(zip(classes.names, per_class.tolist(), strict=True)),
        "block": mean_over_present(block.jaccard()),
    }


def verdict(case: str, scores: dict[str, float]) -> str:
    """Whether every network beat the forest on mean Jaccard in this case, in one line."""
    forest = scores.get("random-forest")
    networks = {model: score for model, score in scores.items() if model != "random-forest"}
    if forest is None or not networks:
        return f"{case}: no forest or no network was run; nothing to compare."
    behind = [m for m, score in networks.items() if not score > forest]
    if not behind:
        return f"{case}: every network beats the forest ({forest:.3f})."
    shown = ", ".join(f"{m} {networks[m]:.3f}" for m in behind)
    return f"{case}: NOT beaten: {shown} against the forest's {forest:.3f}."


def sparse_overrides(config_path: Path, data: Path, out: Path) -> list[str]:
    """The overrides that train on a third of the polygons, labelled only inside them."""
    from spectraseg.config import load_config

    labels = load_config(config_path).data.labels
    if labels.file is None:
        raise SystemExit(f"{config_path}: names no data.labels.file to take a third of")
    third = third_of_polygons(data / labels.file, labels.column, out / "third-of-polygons.geojson")
    return [
        f"data.labels.file={third}",
        f"data.labels.labelled_area={third}",
        # The set's config fixes a sigmoid head for its dense labels; here training chooses.
        "model.unet.head=null",
    ]


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
    sparse_lines = [
        "| model | head | mean Jaccard, mapped area | per class | mean Jaccard, whole block "
        "| validation on the third | epochs | minutes |",
        "| --- " * 8 + "|",
    ]
    means: dict[str, dict[str, float]] = {}
    for name in args.sets:
        config_path = SETS[name]
        data = load_config(config_path).run.data
        if data is None:
            raise SystemExit(f"{config_path}: names no run.data")
        data = data if data.is_absolute() else config_path.parent / data
        if not data.is_dir():
            print(f"{name}: {data} is absent; skipped", file=sys.stderr)
            continue
        sparse = name in SPARSE_SETS
        case = sparse_overrides(config_path, data, args.out / name) if sparse else []
        for model, overrides in MODELS.items():
            if model not in args.models:
                continue
            extra = [f"train.max_minutes={args.minutes}", *case, *overrides]
            config = load_config(config_path, [*(SMOKE if args.smoke else []), *extra])
            out = args.out / name / model
            started = time.monotonic()
            result = train_model(config, data_dir=data, out_dir=out, overwrite=True)
            minutes = (time.monotonic() - started) / 60
            row = best_row(out)
            validation = float(row["val_jaccard"])
            if sparse:
                polygons = load_config(config_path).data.labels.file
                assert polygons is not None
                scores = score_against_all_polygons(
                    out, data, config, data / polygons, out / "prediction"
                )
                score = scores["mapped"]
                shown = ", ".join(
                    f"{k} {v:.2f}" for k, v in scores["per_class"].items() if not math.isnan(v)
                )
                sparse_lines.append(
                    f"| {model} | {scores['head']} | {score:.3f} | {shown} | "
                    f"{scores['block']:.3f} | {validation:.3f} | {result.epochs} | {minutes:.1f} |"
                )
                print(sparse_lines[-1], flush=True)
            else:
                classes = {
                    k.removeprefix("jaccard_"): v for k, v in row.items() if k[:8] == "jaccard_"
                }
                shown = ", ".join(f"{k} {float(v):.2f}" for k, v in classes.items() if v != "nan")
                score = validation
                lines.append(
                    f"| {name} | {model} | {score:.3f} | {shown} | {result.epochs} "
                    f"| {minutes:.1f} |"
                )
                print(lines[-1], flush=True)
            means.setdefault(name, {})[model] = score
            if math.isnan(score):
                print(f"{name} {model}: no score", file=sys.stderr)
    print(f"load average after: {os.getloadavg()}")
    verdicts = [verdict(case, scores) for case, scores in means.items()]
    text = "\n".join(lines) + "\n"
    if len(sparse_lines) > 2:
        text += "\nSparse labels (sentinel2-sparse), scored against every polygon:\n\n"
        text += "\n".join(sparse_lines) + "\n"
    text += "\n" + "\n".join(f"- {line}" for line in verdicts) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
