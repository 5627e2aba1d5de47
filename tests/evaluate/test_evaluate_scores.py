"""Scores against a hand-computed example: two scenes, ignored pixels, an empty class."""

from __future__ import annotations

import math

import numpy as np
import pytest

from spectraseg.evaluate.scores import (
    Evaluation,
    confusion_matrix,
    count_objects,
    evaluate_arrays,
    match_objects,
    score_scene,
)

NAMES = ("building", "water", "road")


def planes(*rows: list[list[int]]) -> np.ndarray:
    return np.asarray(rows, dtype=bool)


# Scene A (2 x 4), last column ignored; the building predicted at (0, 3) must not count.
A_TRUTH = planes([[1, 1, 0, 0], [0, 0, 0, 0]], [[0, 0, 0, 0], [1, 1, 0, 0]], [[0] * 4] * 2)
A_PRED = planes([[1, 0, 1, 1], [0, 0, 0, 0]], [[0, 0, 0, 0], [1, 1, 1, 0]], [[0] * 4] * 2)
A_IGNORE = np.array([[0, 0, 0, 1], [0, 0, 0, 1]], dtype=bool)
# Scene B: a false building, water missed entirely.
B_TRUTH = planes([[0] * 4] * 2, [[1, 1, 1, 1], [0, 0, 0, 0]], [[0] * 4] * 2)
B_PRED = planes([[0, 0, 0, 0], [0, 0, 0, 1]], [[0] * 4] * 2, [[0] * 4] * 2)


@pytest.fixture
def evaluation() -> Evaluation:
    return evaluate_arrays(
        [A_PRED, B_PRED], [A_TRUTH, B_TRUTH], NAMES, ignore=[A_IGNORE, None], names=["a", "b"]
    )


def test_counts_are_summed_over_every_pixel_of_every_scene(evaluation: Evaluation) -> None:
    counts = evaluation.counts
    # building: A tp (0,0), fp (0,2), fn (0,1); B fp (1,3). water: A tp 2, fp 1; B fn 4.
    assert counts.true_positive.tolist() == [1, 2, 0]
    assert counts.false_positive.tolist() == [2, 1, 0]
    assert counts.false_negative.tolist() == [1, 4, 0]


def test_per_class_scores_match_the_hand_computation(evaluation: Evaluation) -> None:
    counts = evaluation.counts
    assert counts.jaccard()[:2] == pytest.approx([1 / 4, 2 / 7])
    assert counts.precision()[:2] == pytest.approx([1 / 3, 2 / 3])
    assert counts.recall()[:2] == pytest.approx([1 / 2, 1 / 3])
    assert counts.f1()[:2] == pytest.approx([2 / 5, 4 / 9])


def test_a_class_absent_everywhere_is_na_and_left_out_of_the_mean(evaluation: Evaluation) -> None:
    assert all(math.isnan(v[2]) for v in (evaluation.counts.jaccard(), evaluation.counts.f1()))
    assert evaluation.mean_jaccard == pytest.approx((1 / 4 + 2 / 7) / 2)


def test_empty_prediction_and_empty_truth_are_defined(evaluation: Evaluation) -> None:
    b = evaluation.scenes[1].counts
    # building in B: predicted, not in truth -> J 0, precision 0, recall n/a.
    assert b.jaccard()[0] == 0 and b.precision()[0] == 0 and math.isnan(b.recall()[0])
    # water in B: in truth, never predicted -> J 0, precision n/a, recall 0, F1 0.
    assert b.jaccard()[1] == 0 and math.isnan(b.precision()[1]) and b.recall()[1] == 0
    assert b.f1()[1] == 0


def test_nothing_anywhere_gives_a_na_mean() -> None:
    empty = np.zeros((3, 2, 2), bool)
    assert math.isnan(evaluate_arrays([empty], [empty], NAMES).mean_jaccard)


def test_a_fully_ignored_scene_counts_nothing() -> None:
    scene = score_scene("x", A_PRED, A_TRUTH, np.ones((2, 4), bool))
    assert scene.counts.true_positive.sum() + scene.counts.false_positive.sum() == 0


def test_objects_match_one_to_one_at_iou_one_half() -> None:
    truth = np.zeros((6, 12), bool)
    truth[0:2, 0:2] = True  # matched by a 2 x 3 prediction: IoU 4/6
    truth[0:2, 5:7] = True  # only a 1 x 2 prediction: IoU 2/4 = 0.5, still matched
    truth[4:6, 9:11] = True  # missed
    predicted = np.zeros((6, 12), bool)
    predicted[0:2, 0:3] = True
    predicted[0, 5:7] = True
    predicted[4, 0] = True  # false
    assert match_objects(predicted, truth) == (2, 3, 3)
    counts = count_objects(predicted[None], truth[None])
    assert counts.f1()[0] == pytest.approx(2 / 3)


def test_ignored_pixels_are_removed_before_objects_are_found() -> None:
    truth = np.zeros((1, 2, 6), bool)
    truth[0, :, :] = True
    predicted = truth.copy()
    predicted[0, :, 2:4] = False  # the prediction is split in two...
    ignore = np.zeros((2, 6), bool)
    ignore[:, 2:4] = True  # ...exactly where nothing is known: two matched objects
    counts = count_objects(predicted, truth, ignore)
    assert counts.true_positive.tolist() == [2] and counts.false_positive.tolist() == [0]


def test_confusion_of_multiclass_masks_has_truth_rows_and_background_first() -> None:
    truth = planes([[1, 0, 0]], [[0, 1, 0]])
    predicted = planes([[1, 0, 0]], [[0, 0, 1]])
    matrix = confusion_matrix(predicted, truth)
    assert matrix[0].tolist() == [0, 0, 1]  # background predicted as class 2
    assert matrix[2].tolist() == [1, 0, 0]  # class 2 predicted as background
    assert matrix[1].tolist() == [0, 1, 0]


def test_confusion_only_for_exclusive_multiclass_runs() -> None:
    assert score_scene("a", A_PRED, A_TRUTH, multiclass=True).confusion is not None
    overlapping = A_PRED.copy()
    overlapping[1] = True
    assert score_scene("a", overlapping, A_TRUTH, multiclass=True).confusion is None
    assert score_scene("a", A_PRED, A_TRUTH).confusion is None
