"""`evaluate --split RUN_DIR` and `--area FILE`: only the held-out pixels, or those inside
polygons, are scored."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import shapely

from spectraseg.cli.main import main
from spectraseg.data.split import SplitSettings, held_out_areas, held_out_from_record, split_record
from spectraseg.errors import DataError
from spectraseg.evaluate.runner import evaluate_paths
from spectraseg.train.run_folder import RunFolder

SHAPE = (8, 16)
CLASSES_YAML = "classes:\n  - {name: building, id: 1}\n  - {name: water, id: 2}\n"


@pytest.fixture
def one_scene(tmp_path: Path, files) -> tuple[Path, Path, Path]:
    """A run holding out one block of scene `s`; a prediction right in it, wrong elsewhere."""
    areas = held_out_areas(["s"], [SHAPE], settings=SplitSettings(), seed=0)
    run = tmp_path / "run"
    run.mkdir()
    RunFolder(run).write_split(split_record(["s"], [SHAPE], areas))
    ids = np.zeros(SHAPE, np.uint8)
    ids[:, ::2] = 1
    truth = np.stack([ids == 1, ids == 2])
    predicted = np.where(areas[0].mask(SHAPE), truth, ~truth)
    grid = files.grid_at(height=SHAPE[0], width=SHAPE[1])
    (tmp_path / "classes.yaml").write_text(CLASSES_YAML)
    files.write_mask_prediction(
        tmp_path / "pred" / "s_mask.tif", predicted, grid, ("building", "water")
    )
    files.write_truth(tmp_path / "truth" / "s.tif", ids, grid)
    return run, tmp_path / "pred", tmp_path / "truth"


def test_only_the_held_out_block_is_scored(one_scene) -> None:
    run, pred, truth = one_scene
    everywhere, _ = evaluate_paths(pred, truth)
    held_out = held_out_from_record(RunFolder(run).read_split(), where="split.json")
    inside, _ = evaluate_paths(pred, truth, held_out=held_out)
    assert everywhere.mean_jaccard < 0.5
    assert inside.mean_jaccard == pytest.approx(1.0)


def test_the_cli_scores_the_held_out_block_of_the_run(one_scene, tmp_path: Path) -> None:
    run, pred, truth = one_scene
    out = tmp_path / "scores"
    arguments = ["evaluate", "--pred", str(pred), "--truth", str(truth), "--out", str(out)]
    assert main(["-q", *arguments, "--split", str(run)]) == 0
    assert json.loads((out / "scores.json").read_text())["mean_jaccard"] == pytest.approx(1.0)


def test_a_scene_trained_on_whole_is_not_scored(one_scene, files) -> None:
    run, pred, truth = one_scene
    grid = files.grid_at(height=SHAPE[0], width=SHAPE[1])
    other = np.zeros((2, *SHAPE), bool)
    files.write_mask_prediction(pred / "t_mask.tif", other, grid, ("building", "water"))
    files.write_truth(truth / "t.tif", np.ones(SHAPE), grid)
    held_out = held_out_from_record(RunFolder(run).read_split(), where="split.json")
    evaluation, _ = evaluate_paths(pred, truth, held_out=held_out)
    assert [scene.name for scene in evaluation.scenes] == ["s"]


def test_a_prediction_of_another_size_than_the_training_scene_is_refused(one_scene) -> None:
    run, pred, truth = one_scene
    record = RunFolder(run).read_split()
    record["scenes"][0]["width"] = 32
    held_out = held_out_from_record(record, where="split.json")
    with pytest.raises(DataError, match=r"s_mask\.tif: 8 x 16 pixels, but split\.json"):
        evaluate_paths(pred, truth, held_out=held_out, split_source="split.json")


def test_a_folder_without_a_split_is_a_one_line_error(
    one_scene, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, pred, truth = one_scene
    arguments = ["evaluate", "--pred", str(pred), "--truth", str(truth), "--out", str(tmp_path)]
    assert main([*arguments, "--split", str(tmp_path / "elsewhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "elsewhere/split.json: no such file" in err[0]


def test_one_prediction_of_a_one_scene_run_pairs_whatever_its_name(one_scene) -> None:
    run, pred, truth = one_scene
    (pred / "s_mask.tif").rename(pred / "IMG_DATA_mask.tif")
    (truth / "s.tif").rename(truth / "IMG_DATA.tif")
    held_out = held_out_from_record(RunFolder(run).read_split(), where="split.json")
    evaluation, _ = evaluate_paths(pred, truth, held_out=held_out)
    assert [scene.name for scene in evaluation.scenes] == ["s"]
    assert evaluation.mean_jaccard == pytest.approx(1.0)


def test_area_scores_only_inside_its_polygons(one_scene, files, tmp_path: Path) -> None:
    _, pred, truth = one_scene
    areas = held_out_areas(["s"], [SHAPE], settings=SplitSettings(), seed=0)
    grid = files.grid_at(height=SHAPE[0], width=SHAPE[1])
    (rows, cols) = areas[0].rows, areas[0].cols
    left, top = grid.transform @ (cols[0], rows[0])
    right, bottom = grid.transform @ (cols[1], rows[1])
    box = shapely.box(left, bottom, right, top)
    pyogrio.raw.write(
        tmp_path / "area.gpkg",
        shapely.to_wkb(np.array([box], dtype=object)),
        field_data=[],
        fields=[],
        crs=grid.crs.to_wkt(),
        geometry_type="Polygon",
        driver="GPKG",
    )
    out = tmp_path / "scores"
    arguments = ["evaluate", "--pred", str(pred), "--truth", str(truth), "--out", str(out)]
    assert main(["-q", *arguments, "--area", str(tmp_path / "area.gpkg")]) == 0
    assert json.loads((out / "scores.json").read_text())["mean_jaccard"] == pytest.approx(1.0)
