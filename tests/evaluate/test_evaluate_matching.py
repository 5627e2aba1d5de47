"""Pairing predictions with truth, finding classes.yaml, and grids that cannot be reconciled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from affine import Affine

from spectraseg.errors import DataError, LabelError, RasterError
from spectraseg.evaluate.matching import find_classes_file, find_predictions, pair_scenes
from spectraseg.evaluate.runner import evaluate_paths
from spectraseg.grid import Grid

Files = Any  # conftest.Files: writers and arrays of the example (conftest is not importable)


def test_files_pair_by_scene_name_and_the_mask_is_preferred(example: Path) -> None:
    pairs = pair_scenes(example / "pred", example / "truth")
    assert [(p.name, p.prediction.name, p.truth.name) for p in pairs] == [
        ("a", "a_mask.tif", "a.tif"),
        ("b", "b_mask.tif", "b.tif"),
    ]


def test_a_single_truth_file_pairs_with_a_single_prediction(example: Path) -> None:
    (pair,) = pair_scenes(example / "pred" / "b_mask.tif", example / "truth" / "a.tif")
    assert pair.truth.name == "a.tif"


def test_one_truth_raster_for_many_scenes_is_refused(example: Path) -> None:
    with pytest.raises(DataError, match="one truth raster for 2 predicted scenes"):
        pair_scenes(example / "pred", example / "truth" / "a.tif")


def test_no_common_scene_names_lists_both_sides(
    files: Files, example: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    files.write_truth(other / "scene_a.tif", files.A_TRUTH_IDS, files.grid_at(0))
    files.write_truth(other / "c.tif", files.A_TRUTH_IDS, files.grid_at(0))
    with pytest.raises(
        DataError,
        match=r"no scene names in common \(predicted: a, b; truth: c, "
        r"scene_a\)",
    ):
        pair_scenes(example / "pred", other)


def test_classes_yaml_is_found_beside_the_truth_or_in_its_parent(example: Path) -> None:
    assert find_classes_file(example / "truth") == example / "classes.yaml"
    assert find_classes_file(example / "truth" / "a.tif") == example / "classes.yaml"
    (example / "truth" / "classes.yaml").write_text("classes: [{name: x, id: 1}]")
    assert find_classes_file(example / "truth") == example / "truth" / "classes.yaml"


def test_prediction_names_strip_probs_and_mask(example: Path) -> None:
    assert sorted(find_predictions(example / "pred")) == ["a", "b"]


def test_the_example_scores_as_computed_by_hand(files: Files, example: Path) -> None:
    evaluation, inputs = evaluate_paths(example / "pred", example / "truth")
    assert evaluation.class_names == ("building", "water", "road")
    assert evaluation.mean_jaccard == pytest.approx(files.HAND_MEAN_JACCARD)
    assert inputs.classes_file == str(example / "classes.yaml")


def test_vector_truth_is_rasterized_on_the_prediction_grid(example: Path, tmp_path: Path) -> None:
    # Scene a's truth as polygons: building x 0..4 m, water x 0..4 m one row down; the
    # ignored column becomes a labelled-as-background column here, so the predicted building
    # at (0, 3) is now a false positive.
    left, top = 330000.0, 5822040.0
    features = [
        {
            "type": "Feature",
            "properties": {"class": "building"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [
                        [left, top],
                        [left + 4, top],
                        [left + 4, top - 2],
                        [left, top - 2],
                        [left, top],
                    ]
                ],
            },
        },
        {
            "type": "Feature",
            "properties": {"class": "water"},
            "geometry": {
                "type": "Polygon",
                "coordinates": [
                    [
                        [left, top - 2],
                        [left + 4, top - 2],
                        [left + 4, top - 4],
                        [left, top - 4],
                        [left, top - 2],
                    ]
                ],
            },
        },
    ]
    truth = tmp_path / "a.geojson"
    truth.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32633"}},
                "features": features,
            }
        )
    )
    evaluation, _ = evaluate_paths(
        example / "pred" / "a_mask.tif", truth, classes_file=example / "classes.yaml"
    )
    counts = evaluation.counts
    assert counts.true_positive.tolist() == [1, 2, 0]
    assert counts.false_positive.tolist() == [2, 1, 0]


def test_a_yes_column_scores_its_class_without_a_classes_file(files: Files, tmp_path: Path):
    # As delivered with SpaceNet: `building: yes`, no classes.yaml. Training names the class
    # after the column; evaluating its prediction against the same file must do the same.
    truth = files.write_yes_buildings(tmp_path / "truth" / "buildings.geojson")
    predicted = np.array([[[1, 1, 0, 0], [0, 0, 0, 0]]], dtype=bool)
    prediction = files.write_mask_prediction(
        tmp_path / "pred" / "a_mask.tif", predicted, files.grid_at(0), names=("building",)
    )
    evaluation, inputs = evaluate_paths(prediction, truth, class_column="building")
    assert inputs.classes_file is None
    assert inputs.as_dict()["class_column"] == "building"  # the report reads the same column
    assert evaluation.class_names == ("building",)
    assert evaluation.counts.true_positive.tolist() == [2]
    assert evaluation.mean_jaccard == pytest.approx(2 / 2)


def test_a_truth_without_crs_and_a_georeferenced_prediction_cannot_be_reconciled(
    files: Files, example: Path, tmp_path: Path
) -> None:
    truth = files.write_truth(
        tmp_path / "a.tif", files.A_TRUTH_IDS, Grid(None, Affine.identity(), 4, 2)
    )
    with pytest.raises(RasterError, match="cannot be reconciled"):
        evaluate_paths(
            example / "pred" / "a_mask.tif", truth, classes_file=example / "classes.yaml"
        )


def test_pixel_rasters_of_different_sizes_cannot_be_reconciled(
    files: Files, tmp_path: Path
) -> None:
    pixels = Grid(None, Affine.identity(), 4, 2)
    prediction = files.write_mask_prediction(tmp_path / "a_mask.tif", files.A_PRED, pixels)
    truth = files.write_truth(
        tmp_path / "t" / "a.tif", np.zeros((3, 4)), Grid(None, Affine.identity(), 4, 3)
    )
    with pytest.raises(RasterError, match=r"4 x 3 px and the prediction 4 x 2 px"):
        evaluate_paths(prediction, truth)


def test_grids_that_do_not_overlap_cannot_be_reconciled(
    files: Files, example: Path, tmp_path: Path
) -> None:
    truth = files.write_truth(tmp_path / "a.tif", files.A_TRUTH_IDS, files.grid_at(1000))
    with pytest.raises(RasterError, match="does not overlap"):
        evaluate_paths(
            example / "pred" / "a_mask.tif", truth, classes_file=example / "classes.yaml"
        )


def test_truth_pixels_outside_a_smaller_truth_raster_are_ignored(
    files: Files, example: Path, tmp_path: Path
) -> None:
    # Truth covers only the left half of scene a: the prediction's right half does not count.
    truth = files.write_truth(
        tmp_path / "a.tif", files.A_TRUTH_IDS[:, :2], files.grid_at(0, width=2)
    )
    evaluation, _ = evaluate_paths(
        example / "pred" / "a_mask.tif", truth, classes_file=example / "classes.yaml"
    )
    assert evaluation.counts.false_positive.tolist() == [0, 0, 0]


def test_class_names_that_do_not_match_suggest_the_truth_name(
    files: Files, example: Path, tmp_path: Path
) -> None:
    names = ("buildings", "water", "road")
    prediction = files.write_mask_prediction(
        tmp_path / "a_mask.tif", files.A_PRED, files.grid_at(0), names
    )
    with pytest.raises(
        LabelError,
        match=r"predicted class 'buildings' is not a truth class "
        r"\(did you mean 'building'\?\)",
    ):
        evaluate_paths(prediction, example / "truth" / "a.tif")


def test_probabilities_without_class_names_need_classes(
    files: Files, example: Path, tmp_path: Path
) -> None:
    probs = files.write_probabilities(
        tmp_path / "a_probs.tif", np.zeros((3, 2, 4)), files.grid_at(0), None
    )
    with pytest.raises(LabelError, match="pass --classes"):
        evaluate_paths(probs, example / "truth" / "a.tif")
    evaluation, _ = evaluate_paths(
        probs, example / "truth" / "a.tif", classes_file=example / "classes.yaml"
    )
    assert evaluation.counts.false_negative.tolist() == [2, 2, 0]


def test_probabilities_are_thresholded_with_their_tuned_thresholds(
    files: Files, example: Path, tmp_path: Path
) -> None:
    probs = np.zeros((3, 2, 4))
    probs[0, 0, :2] = 0.4  # the two truth buildings, at 0.4
    plain = files.write_probabilities(tmp_path / "x" / "a_probs.tif", probs, files.grid_at(0))
    tuned = files.write_probabilities(
        tmp_path / "y" / "a_probs.tif",
        probs,
        files.grid_at(0),
        SPECTRASEG_THRESHOLDS=json.dumps([0.3, 0.5, 0.5]),
    )
    at_half, _ = evaluate_paths(plain, example / "truth" / "a.tif")
    at_tuned, _ = evaluate_paths(tuned, example / "truth" / "a.tif")
    assert at_half.counts.true_positive[0] == 0 and at_tuned.counts.true_positive[0] == 2


def test_a_run_folder_gives_class_names_and_tuned_thresholds(
    files: Files, example: Path, tmp_path: Path
) -> None:
    from spectraseg.models.card import ModelCard
    from spectraseg.train.checkpoint import Checkpoint, save_checkpoint

    card = ModelCard.model_validate(
        {
            "model": "index-threshold",
            "band_names": ("nir",),
            "normalization": {"stats": {}},
            "classes": [
                {"name": name, "id": k + 1} for k, name in enumerate(("building", "water", "road"))
            ],
            "thresholds": (0.3, 0.5, 0.5),
            "patch_px": 64,
            "per_pixel": True,
        }
    )
    checkpoint = Checkpoint(
        card=card,
        epoch=1,
        best_score=0.5,
        seed=0,
        versions={},
        git_commit=None,
        config={},
        weights={},
    )
    save_checkpoint(tmp_path / "run" / "best.pt", checkpoint)
    probs = np.zeros((3, 2, 4))
    probs[0, 0, :2] = 0.4  # the two truth buildings, above the run's 0.3
    unnamed = files.write_probabilities(tmp_path / "a_probs.tif", probs, files.grid_at(0), None)
    evaluation, inputs = evaluate_paths(unnamed, example / "truth" / "a.tif", run=tmp_path / "run")
    assert evaluation.class_names == ("building", "water", "road")
    assert evaluation.counts.true_positive[0] == 2
    assert inputs.run == str(tmp_path / "run")
