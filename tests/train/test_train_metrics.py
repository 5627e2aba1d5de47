"""Confusion counts and Jaccard: hand-computed cases, empty classes, ignored pixels, sweeps."""

from __future__ import annotations

import numpy as np
import pytest

from spectraseg.models.head import binarize
from spectraseg.train.metrics import (
    DEFAULT_THRESHOLDS,
    ClassCounts,
    ThresholdSweep,
    mean_over_present,
)


def masks(*rows: str) -> np.ndarray:
    """(K, 1, W) bool masks written as strings of 0 and 1, one string per class."""
    return np.array([[[char == "1" for char in row]] for row in rows])


def test_jaccard_matches_hand_counts() -> None:
    predicted = masks("1100", "0000", "0110")
    truth = masks("1010", "0000", "0110")
    counts = ClassCounts.zeros(3)
    counts.add(predicted, truth)
    assert counts.true_positive.tolist() == [1, 0, 2]
    assert counts.false_positive.tolist() == [1, 0, 0]
    assert counts.false_negative.tolist() == [1, 0, 0]
    assert counts.true_negative.tolist() == [1, 4, 2]
    jaccard = counts.jaccard()
    assert jaccard[0] == pytest.approx(1 / 3)
    assert np.isnan(jaccard[1])  # absent in truth and prediction: undefined, not perfect
    assert jaccard[2] == 1.0
    assert counts.mean_jaccard() == pytest.approx((1 / 3 + 1) / 2)


def test_class_absent_in_truth_but_predicted_scores_zero() -> None:
    counts = ClassCounts.zeros(1)
    counts.add(masks("0110"), masks("0000"))
    assert counts.jaccard().tolist() == [0.0]
    assert np.isnan(counts.recall()[0])
    assert counts.precision().tolist() == [0.0]


def test_ignored_pixels_are_not_counted() -> None:
    predicted = masks("1111")
    truth = masks("1000")
    ignore = np.array([[False, True, True, False]])
    counts = ClassCounts.zeros(1)
    counts.add(predicted, truth, ignore)
    assert counts.true_positive.tolist() == [1]
    assert counts.false_positive.tolist() == [1]
    assert counts.true_negative.tolist() == [0]
    assert counts.jaccard().tolist() == [0.5]


def test_counts_accumulate_over_the_set_not_per_batch() -> None:
    # Batch one: a perfect 1-pixel hit. Batch two: 3 pixels missed. The set's Jaccard is 1/4,
    # while the mean of per-batch scores would be (1 + 0) / 2.
    first, second = ClassCounts.zeros(1), ClassCounts.zeros(1)
    first.add(masks("1000"), masks("1000"))
    second.add(masks("0000"), masks("0111"))
    assert (first + second).jaccard().tolist() == [0.25]
    batched = ClassCounts.zeros(1)
    batched.add(np.stack([masks("1000"), masks("0000")]), np.stack([masks("1000"), masks("0111")]))
    assert batched.as_dict() == (first + second).as_dict()


def test_batched_ignore_applies_per_sample() -> None:
    predicted = np.stack([masks("11"), masks("11")])
    truth = np.stack([masks("10"), masks("10")])
    ignore = np.array([[[False, True]], [[False, False]]])
    counts = ClassCounts.zeros(1)
    counts.add(predicted, truth, ignore)
    assert counts.true_positive.tolist() == [2]
    assert counts.false_positive.tolist() == [1]


def test_precision_recall_f1_by_hand() -> None:
    counts = ClassCounts.zeros(1)
    counts.add(masks("11100"), masks("10011"))
    assert counts.precision()[0] == pytest.approx(1 / 3)
    assert counts.recall()[0] == pytest.approx(1 / 3)
    assert counts.f1()[0] == pytest.approx(2 / 6)


def test_counts_round_trip_through_plain_dicts() -> None:
    counts = ClassCounts.zeros(2)
    counts.add(masks("10", "11"), masks("11", "01"))
    assert ClassCounts.from_dict(counts.as_dict()).as_dict() == counts.as_dict()


def test_shape_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        ClassCounts.zeros(1).add(masks("10"), masks("100"))
    with pytest.raises(ValueError, match="K = 2"):
        ClassCounts.zeros(2).add(masks("10"), masks("10"))


def test_mean_over_present_skips_nan_and_is_nan_when_nothing_is_present() -> None:
    assert mean_over_present(np.array([0.2, np.nan, 0.4])) == pytest.approx(0.3)
    assert np.isnan(mean_over_present(np.array([np.nan, np.nan])))


def test_binarize_uses_at_least_the_threshold_per_class() -> None:
    probs = np.array([[[0.0, 0.5, 1.0]], [[0.0, 0.5, 1.0]]], dtype=np.float32)
    assert binarize(probs, 0.5).astype(int).tolist() == [[[0, 1, 1]], [[0, 1, 1]]]
    assert binarize(probs, [0.0, 0.75]).astype(int).tolist() == [[[1, 1, 1]], [[0, 0, 1]]]
    assert binarize(probs[None], [1.0, 0.75]).shape == (1, 2, 1, 3)


def test_sweep_counts_equal_direct_counts_at_every_threshold() -> None:
    rng = np.random.default_rng(0)
    probs = rng.random((3, 2, 8, 8)).astype(np.float32)
    truth = rng.random((3, 2, 8, 8)) < 0.3
    ignore = rng.random((3, 8, 8)) < 0.2
    sweep = ThresholdSweep(2)
    sweep.add(probs, truth, ignore)
    for threshold in DEFAULT_THRESHOLDS:
        direct = ClassCounts.zeros(2)
        direct.add(binarize(probs, threshold), truth, ignore)
        assert sweep.counts_at(threshold).as_dict() == direct.as_dict()


def test_sweep_finds_the_threshold_that_separates_the_classes() -> None:
    # Class 0 is truly present where the probability is >= 0.3; class 1 where it is >= 0.8.
    probs = np.linspace(0.01, 0.99, 99, dtype=np.float32).reshape(1, 1, 99).repeat(2, axis=0)
    truth = np.stack([probs[0] >= 0.3, probs[1] >= 0.8])
    sweep = ThresholdSweep(2)
    sweep.add(probs, truth)
    thresholds, scores = sweep.best()
    assert thresholds.tolist() == pytest.approx([0.3, 0.8])
    assert scores.tolist() == [1.0, 1.0]
    assert sweep.counts_at(0.5).jaccard()[0] < 1.0


def test_sweep_keeps_half_for_a_class_without_truth() -> None:
    sweep = ThresholdSweep(2)
    probs = np.full((2, 4, 4), 0.9, dtype=np.float32)
    truth = np.zeros((2, 4, 4), dtype=bool)
    truth[0] = True
    sweep.add(probs, truth)
    thresholds, scores = sweep.best()
    assert thresholds[1] == 0.5
    assert scores[1] == 0.0  # predicted everywhere at 0.5 while absent: a real miss


def test_sweep_ties_prefer_the_threshold_nearest_half() -> None:
    sweep = ThresholdSweep(1)
    sweep.add(np.array([[[0.01, 0.99]]]), np.array([[[False, True]]]))
    assert sweep.best()[0].tolist() == [0.5]


def test_sweep_refuses_thresholds_it_did_not_count() -> None:
    with pytest.raises(ValueError, match="not in the sweep"):
        ThresholdSweep(1).counts_at(0.42)
