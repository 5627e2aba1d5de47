"""A scene is scored one band of rows at a time: the counts equal those of the whole scene at
once, whatever the band height, with post-processing, a held-out block, an area and nodata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio.raw
import pytest
import shapely

from spectraseg.data.split import SplitSettings, held_out_areas
from spectraseg.evaluate import runner
from spectraseg.evaluate.runner import evaluate_paths
from spectraseg.postprocess.chain import PostprocessSettings

SHAPE = (40, 24)
CLASSES_YAML = "classes:\n  - {name: building, id: 1}\n  - {name: water, id: 2}\n"
CLEAN = PostprocessSettings.model_validate(
    {"morphology": {"all": {"opening_px": 1, "fill_holes_below_px": 4, "min_area_px": 5}}}
)


@pytest.fixture
def scene(tmp_path: Path, files) -> tuple[Path, Path]:
    """Speckled probabilities (every clean-up step changes them) with a nodata corner, and
    truth with unlabelled pixels."""
    rng = np.random.default_rng(7)
    grid = files.grid_at(height=SHAPE[0], width=SHAPE[1])
    probs = rng.random((2, *SHAPE)) * 0.6 + np.linspace(0, 0.4, SHAPE[1])
    probs[:, :5, :6] = np.nan
    ids = rng.integers(0, 3, SHAPE).astype(np.uint8)
    ids[30:, 20:] = 255
    (tmp_path / "classes.yaml").write_text(CLASSES_YAML + "ignore_value: 255\n")
    files.write_probabilities(tmp_path / "pred" / "s_probs.tif", probs, grid, ("building", "water"))
    files.write_truth(tmp_path / "truth" / "s.tif", ids, grid)
    return tmp_path / "pred", tmp_path / "truth"


def _counts(pred: Path, truth: Path, **options: object) -> np.ndarray:
    evaluation, _ = evaluate_paths(pred, truth, postprocess=CLEAN, **options)  # type: ignore[arg-type]
    counts = evaluation.counts
    return np.stack(
        [counts.true_positive, counts.false_positive, counts.false_negative, counts.true_negative]
    )


@pytest.mark.parametrize("rows", [1, 7, 16])
def test_bands_of_rows_give_the_whole_scenes_counts(scene, rows, monkeypatch, tmp_path) -> None:
    pred, truth = scene
    areas = held_out_areas(["s"], [SHAPE], settings=SplitSettings(), seed=0)
    held_out = {"s": (SHAPE, areas[0])}
    whole = _counts(pred, truth, held_out=held_out)

    monkeypatch.setattr(runner, "strip_rows", lambda width, classes: rows)

    assert np.array_equal(_counts(pred, truth, held_out=held_out), whole)
    assert whole.sum() > 0


def test_an_area_is_applied_band_by_band(scene, files, monkeypatch, tmp_path) -> None:
    pred, truth = scene
    grid = files.grid_at(height=SHAPE[0], width=SHAPE[1])
    left, top = grid.transform @ (3, 9)
    right, bottom = grid.transform @ (20, 33)
    pyogrio.raw.write(
        tmp_path / "area.gpkg",
        shapely.to_wkb(np.array([shapely.box(left, bottom, right, top)], dtype=object)),
        field_data=[],
        fields=[],
        crs=grid.crs.to_wkt(),
        geometry_type="Polygon",
        driver="GPKG",
    )
    whole = _counts(pred, truth, area=tmp_path / "area.gpkg")

    monkeypatch.setattr(runner, "strip_rows", lambda width, classes: 5)

    assert np.array_equal(_counts(pred, truth, area=tmp_path / "area.gpkg"), whole)
