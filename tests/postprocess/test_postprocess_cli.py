"""`spectraseg vectorize`: options, formats, and one-line errors with exit 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from affine import Affine

from spectraseg.cli.main import main
from spectraseg.grid import Grid

Factory = Callable[..., Path]


@pytest.fixture
def probs_raster(tmp_path: Path, write_prediction: Factory) -> Path:
    probs = np.zeros((2, 20, 20), np.float32)
    probs[0, 2:12, 2:12] = 0.9  # building
    probs[1, 8:18, 8:18] = 0.8  # water, overlapping the building
    return write_prediction(
        tmp_path / "scene_probs.tif",
        probs,
        class_names=["building", "water"],
        thresholds=[0.5, 0.5],
    )


def test_vectorize_writes_geojson_and_applies_rules(
    probs_raster: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - {wins: water, over: [building]}\n")
    out = tmp_path / "out.geojson"
    assert main(["vectorize", str(probs_raster), "--out", str(out), "--rules", str(rules)]) == 0
    features = json.loads(out.read_text())["features"]
    areas = {f["properties"]["class_name"]: f["properties"]["area_px"] for f in features}
    assert areas == {"building": 100 - 16, "water": 100}
    assert "2 polygons (building 1, water 1)" in capsys.readouterr().out


def test_simplify_accepts_pixels_and_metres(probs_raster: Path, tmp_path: Path) -> None:
    for tolerance in ("1", "0.5px", "2m"):
        out = tmp_path / f"out_{tolerance}.gpkg"
        assert (
            main(["vectorize", str(probs_raster), "--out", str(out), "--simplify", tolerance]) == 0
        )
        assert pyogrio.read_info(out)["features"] == 2


def test_thresholds_file_overrides_the_tag(probs_raster: Path, tmp_path: Path) -> None:
    thresholds = tmp_path / "t.yaml"
    thresholds.write_text("water: 0.85\n")
    out = tmp_path / "out.gpkg"
    assert (
        main(["vectorize", str(probs_raster), "--out", str(out), "--thresholds", str(thresholds)])
        == 0
    )
    assert pyogrio.read_info(out)["features"] == 1  # water at 0.8 is now below its threshold


def test_dstl_csv_through_the_command_line(probs_raster: Path, tmp_path: Path) -> None:
    sizes = tmp_path / "grid_sizes.csv"
    sizes.write_text("ImageId,Xmax,Ymin\n6120_2_2,0.009,-0.009\n")
    out = tmp_path / "submission.csv"
    assert (
        main(
            [
                "vectorize",
                str(probs_raster),
                "--out",
                str(out),
                "--grid-sizes",
                str(sizes),
                "--image-id",
                "6120_2_2",
            ]
        )
        == 0
    )
    lines = out.read_text().splitlines()
    assert lines[0] == "ImageId,ClassType,MultipolygonWKT"
    assert [line.split(",")[:2] for line in lines[1:]] == [["6120_2_2", "1"], ["6120_2_2", "2"]]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--simplify", "fast"], "--simplify 'fast': expected a number"),
        (["--thresholds", "missing.yaml"], "missing.yaml: no such thresholds file"),
        (["--rules", "missing.yaml"], "missing.yaml: no such rules file"),
        (["--set", "postprocess.polygons.simplify_px=-1"], "must not be negative"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    probs_raster: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    code = main(["vectorize", str(probs_raster), "--out", str(tmp_path / "o.geojson"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert message in err


def test_a_bad_rule_exits_2_naming_the_file(
    probs_raster: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("- {wins: watr, over: all}\n")
    code = main(
        ["vectorize", str(probs_raster), "--out", str(tmp_path / "o.gpkg"), "--rules", str(rules)]
    )
    assert code == 2
    assert "unknown class 'watr' (did you mean 'water'?)" in capsys.readouterr().err


def test_probabilities_without_class_names_need_classes(
    tmp_path: Path, write_prediction: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_prediction(
        tmp_path / "x_probs.tif",
        np.zeros((2, 4, 4)),
        tags=False,
        descriptions=False,
        grid=Grid(None, Affine.identity(), 4, 4),
    )
    assert main(["vectorize", str(path), "--out", str(tmp_path / "x.geojson")]) == 2
    assert "pass --classes FILE" in capsys.readouterr().err
    classes = tmp_path / "classes.yaml"
    classes.write_text("classes: [{name: a, id: 1}, {name: b, id: 2}]\n")
    assert (
        main(
            [
                "vectorize",
                str(path),
                "--out",
                str(tmp_path / "x.geojson"),
                "--classes",
                str(classes),
            ]
        )
        == 0
    )


def test_an_existing_output_needs_overwrite(
    probs_raster: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o.shp"
    assert main(["vectorize", str(probs_raster), "--out", str(out)]) == 0
    assert main(["vectorize", str(probs_raster), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["vectorize", str(probs_raster), "--out", str(out), "--overwrite"]) == 0
