"""Scores out: `scores.json` (top-level `mean_jaccard`), `scores.csv`, and a table for the terminal.

Undefined scores (see `scores.py`) are `null` in JSON, empty in CSV and "n/a" on screen.
CSV rows: one per scene and class, then the totals over all scenes (scene `all`), then the mean
Jaccard (scene `all`, class `mean`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from spectraseg.evaluate.scores import Evaluation, ObjectCounts
from spectraseg.io.atomic import atomic_set
from spectraseg.train.metrics import ClassCounts, mean_over_present

SCORES_JSON = "scores.json"
SCORES_CSV = "scores.csv"
ALL_SCENES = "all"
CSV_COLUMNS = (
    "scene",
    "class",
    "jaccard",
    "precision",
    "recall",
    "f1",
    "true_positive",
    "false_positive",
    "false_negative",
    "object_precision",
    "object_recall",
    "object_f1",
)


def _number(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


def _class_scores(counts: ClassCounts, objects: ObjectCounts | None, k: int) -> dict[str, Any]:
    scores: dict[str, Any] = {
        "jaccard": _number(counts.jaccard()[k]),
        "precision": _number(counts.precision()[k]),
        "recall": _number(counts.recall()[k]),
        "f1": _number(counts.f1()[k]),
        "true_positive": int(counts.true_positive[k]),
        "false_positive": int(counts.false_positive[k]),
        "false_negative": int(counts.false_negative[k]),
    }
    if objects is not None:
        scores.update(
            object_precision=_number(objects.precision()[k]),
            object_recall=_number(objects.recall()[k]),
            object_f1=_number(objects.f1()[k]),
            objects_matched=int(objects.true_positive[k]),
            objects_predicted=int(objects.true_positive[k] + objects.false_positive[k]),
            objects_true=int(objects.true_positive[k] + objects.false_negative[k]),
        )
    return scores


def _scored_pixels(counts: ClassCounts) -> int:
    if counts.num_classes == 0:
        return 0
    return int(
        counts.true_positive[0]
        + counts.false_positive[0]
        + counts.false_negative[0]
        + counts.true_negative[0]
    )


def scores_document(
    evaluation: Evaluation, *, sources: Mapping[str, str | None] | None = None
) -> dict[str, Any]:
    """The content of scores.json: `mean_jaccard` first, then per class, scenes, extras."""
    counts, objects = evaluation.counts, evaluation.objects
    names = evaluation.class_names
    document: dict[str, Any] = {
        "mean_jaccard": _number(evaluation.mean_jaccard),
        "classes": list(names),
        # Scored pixels (all classes count the same ones): the base of each class's pixel share.
        "pixels": _scored_pixels(counts),
        "per_class": {name: _class_scores(counts, objects, k) for k, name in enumerate(names)},
        "scenes": [
            {
                "name": scene.name,
                "mean_jaccard": _number(mean_over_present(scene.counts.jaccard())),
                "per_class": {
                    name: _class_scores(scene.counts, scene.objects, k)
                    for k, name in enumerate(names)
                },
            }
            for scene in evaluation.scenes
        ],
    }
    if objects is not None:
        document["mean_object_f1"] = _number(mean_over_present(objects.f1()))
    confusion = evaluation.confusion
    if confusion is not None:
        document["confusion"] = {
            "labels": ["background", *names],
            "rows": "truth",
            "columns": "prediction",
            "matrix": confusion.tolist(),
        }
    if sources:
        document["sources"] = dict(sources)
    return document


def _csv_value(value: Any) -> Any:
    return "" if value is None else value


def scores_csv(evaluation: Evaluation) -> str:
    """The content of scores.csv."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    groups = [(scene.name, scene.counts, scene.objects) for scene in evaluation.scenes]
    groups.append((ALL_SCENES, evaluation.counts, evaluation.objects))
    for scene_name, counts, objects in groups:
        for k, name in enumerate(evaluation.class_names):
            scores = _class_scores(counts, objects, k)
            writer.writerow(
                [scene_name, name, *(_csv_value(scores.get(c)) for c in CSV_COLUMNS[2:])]
            )
    mean = _number(evaluation.mean_jaccard)
    writer.writerow([ALL_SCENES, "mean", _csv_value(mean), *([""] * (len(CSV_COLUMNS) - 3))])
    return buffer.getvalue()


def write_scores(
    out_dir: str | os.PathLike[str],
    evaluation: Evaluation,
    *,
    sources: Mapping[str, str | None] | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write scores.json and scores.csv into `out_dir` (as one atomic set); returns their paths."""
    folder = Path(out_dir)
    json_path, csv_path = folder / SCORES_JSON, folder / SCORES_CSV
    document = scores_document(evaluation, sources=sources)
    # One set: a full disk or a kill leaves both files (old or new) or neither.
    with atomic_set((json_path, csv_path), overwrite=overwrite) as (json_tmp, csv_tmp):
        json_tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        csv_tmp.write_text(scores_csv(evaluation), encoding="utf-8")
    return json_path, csv_path


def _shown(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


def scores_table(evaluation: Evaluation) -> Table:
    """A rich table of the per-class scores over all scenes, with the mean Jaccard."""
    counts, objects = evaluation.counts, evaluation.objects
    table = Table(title=f"{len(evaluation.scenes)} scene(s)")
    for column in ("class", "Jaccard", "precision", "recall", "F1"):
        table.add_column(column, justify="left" if column == "class" else "right")
    if objects is not None:
        table.add_column("object F1", justify="right")
    columns: list[np.ndarray] = [counts.jaccard(), counts.precision(), counts.recall(), counts.f1()]
    if objects is not None:
        columns.append(objects.f1())
    for k, name in enumerate(evaluation.class_names):
        table.add_row(name, *(_shown(float(column[k])) for column in columns))
    table.add_section()
    table.add_row("mean Jaccard", _shown(evaluation.mean_jaccard))
    return table
