"""scores.json and scores.csv: the mean first, n/a as null / empty, totals and per scene."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from spectraseg.evaluate.scores import evaluate_arrays
from spectraseg.evaluate.tables import scores_csv, scores_document, write_scores


def test_nothing_present_gives_a_null_mean_and_empty_csv_cells(tmp_path: Path) -> None:
    empty = np.zeros((1, 2, 2), bool)
    evaluation = evaluate_arrays([empty], [empty], ["water"])
    document = scores_document(evaluation)
    assert next(iter(document)) == "mean_jaccard" and document["mean_jaccard"] is None
    assert scores_csv(evaluation).splitlines()[-1] == "all,mean," + "," * 9
    json_path, csv_path = write_scores(tmp_path, evaluation)
    assert json.loads(json_path.read_text())["per_class"]["water"]["jaccard"] is None
    assert csv_path.name == "scores.csv"


def test_sources_are_recorded() -> None:
    mask = np.ones((1, 2, 2), bool)
    document = scores_document(
        evaluate_arrays([mask], [mask], ["water"]), sources={"prediction": "p", "truth": "t"}
    )
    assert document["mean_jaccard"] == 1.0 and document["sources"]["truth"] == "t"
