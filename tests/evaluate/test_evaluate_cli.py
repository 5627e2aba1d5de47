"""`spectraseg evaluate`: scores.json / scores.csv / table, and one-line errors with exit 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from spectraseg.cli.main import main

HAND_MEAN = (1 / 4 + 2 / 7) / 2


def test_evaluate_writes_the_hand_computed_scores(
    example: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "scores"
    code = main(
        [
            "evaluate",
            "--pred",
            str(example / "pred"),
            "--truth",
            str(example / "truth"),
            "--out",
            str(out),
            "--objects",
        ]
    )
    assert code == 0
    document = json.loads((out / "scores.json").read_text())
    assert document["mean_jaccard"] == pytest.approx(HAND_MEAN, abs=1e-6)
    assert document["per_class"]["building"]["jaccard"] == pytest.approx(0.25)
    assert document["per_class"]["road"]["jaccard"] is None  # absent everywhere: n/a
    assert [s["name"] for s in document["scenes"]] == ["a", "b"]
    assert document["scenes"][0]["mean_jaccard"] == pytest.approx(0.5)
    assert "object_f1" in document["per_class"]["water"]
    rows = list(csv.DictReader((out / "scores.csv").open()))
    assert len(rows) == 3 * 3 + 1
    assert rows[-1]["class"] == "mean" and float(rows[-1]["jaccard"]) == pytest.approx(HAND_MEAN)
    assert next(r for r in rows if r["scene"] == "all" and r["class"] == "road")["jaccard"] == ""
    shown = capsys.readouterr().out
    assert "mean Jaccard" in shown and "n/a" in shown and "0.2679" in shown


def test_existing_scores_need_overwrite(
    example: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "evaluate",
        "--pred",
        str(example / "pred"),
        "--truth",
        str(example / "truth"),
        "--out",
        str(tmp_path),
    ]
    assert main(args) == 0
    assert main(args) == 2
    assert "scores.json: already exists. Pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0


def test_mismatched_class_names_exit_2_with_a_suggestion(
    example: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (example / "classes.yaml").write_text(
        "classes: [{name: buildings, id: 1}, {name: water, id: 2}, {name: road, id: 3}]\n"
    )
    code = main(
        [
            "-q",
            "evaluate",
            "--pred",
            str(example / "pred"),
            "--truth",
            str(example / "truth"),
            "--out",
            str(tmp_path / "s"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "did you mean 'buildings'" in err


def test_a_missing_truth_folder_exits_2(
    example: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "evaluate",
            "--pred",
            str(example / "pred"),
            "--truth",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "s"),
        ]
    )
    assert code == 2
    assert "none: no such truth file or folder" in capsys.readouterr().err


def test_the_built_in_sample_scores_its_own_masks_perfectly(tmp_path: Path) -> None:
    sample = tmp_path / "sample"
    assert main(["-q", "sample", str(sample), "--scenes", "2", "--size", "48"]) == 0
    out = tmp_path / "scores"
    # The sample's id masks, taken as predictions, against its polygons: the same pixels.
    assert (
        main(
            [
                "-q",
                "evaluate",
                "--pred",
                str(sample / "masks"),
                "--truth",
                str(sample / "labels"),
                "--classes",
                str(sample / "classes.yaml"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    document = json.loads((out / "scores.json").read_text())
    assert document["mean_jaccard"] == pytest.approx(1.0)
    assert "confusion" in document  # one class per pixel: a multi-class run


def test_a_yes_column_without_classes_file_scores_and_gets_its_report(
    files, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = files.write_yes_buildings(tmp_path / "truth" / "buildings.geojson")
    predicted = np.array([[[1, 1, 1, 0], [0, 0, 0, 0]]], dtype=bool)
    files.write_mask_prediction(
        tmp_path / "pred" / "a_mask.tif", predicted, files.grid_at(0), names=("building",)
    )
    out = tmp_path / "scores"
    args = ["evaluate", "--pred", str(tmp_path / "pred"), "--truth", str(truth)]
    assert main([*args, "--class-column", "building", "--out", str(out)]) == 0
    assert f"report: {out / 'report.html'}" in capsys.readouterr().out
    document = json.loads((out / "scores.json").read_text())
    assert document["per_class"]["building"]["jaccard"] == pytest.approx(2 / 3)
    assert document["sources"]["class_column"] == "building"
