"""Per-class confusion counts and the scores built from them, above all Jaccard (IoU).

Scores come from counts accumulated over a whole set of patches or scenes, never from a mean of
per-batch scores: a batch in which a rare class is absent would otherwise count as a perfect (or
undefined) score and bias the mean. Everything here is numpy; callers convert tensors first.

A pixel is predicted in a class when its probability is at least the class threshold
(`probs >= threshold`, see `spectraseg.models.head.binarize`), so threshold 0 selects every
pixel and 1 only certain ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from spectraseg.errors import ConfigError
from spectraseg.models.head import thresholds_in_dtype

__all__ = [
    "DEFAULT_THRESHOLDS",
    "ClassCounts",
    "RatesFromCounts",
    "ThresholdSweep",
    "mean_over_present",
]

# 0.05 to 0.95 in steps of 0.05: fine enough for Jaccard, whose optimum is flat near its peak.
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.05 * step, 2) for step in range(1, 20))


def mean_over_present(values: np.ndarray) -> float:
    """Mean of the values that are not NaN; NaN when all are (no class present anywhere).

    Example:
        >>> mean_over_present(np.array([0.5, np.nan, 1.0]))
        0.75
    """
    present = np.asarray(values, dtype=np.float64)
    present = present[~np.isnan(present)]
    return float(present.mean()) if present.size else float("nan")


class RatesFromCounts:
    """Jaccard, precision, recall and F1 from per-class true/false positive/negative counts.

    The one place these formulas live: pixel counts (`ClassCounts`) and object counts
    (`spectraseg.evaluate.scores.ObjectCounts`) both inherit them. Each score is (K,) float64,
    NaN where undefined (a zero denominator).
    """

    true_positive: np.ndarray
    false_positive: np.ndarray
    false_negative: np.ndarray

    def jaccard(self) -> np.ndarray:
        """(K,) intersection over union; NaN where the class is absent in truth and prediction."""
        return _ratio(
            self.true_positive, self.true_positive + self.false_positive + self.false_negative
        )

    def precision(self) -> np.ndarray:
        """(K,) share of what is predicted that is right; NaN where nothing is predicted."""
        return _ratio(self.true_positive, self.true_positive + self.false_positive)

    def recall(self) -> np.ndarray:
        """(K,) share of the truth that is found; NaN where the class is absent in truth."""
        return _ratio(self.true_positive, self.true_positive + self.false_negative)

    def f1(self) -> np.ndarray:
        """(K,) F1 = Dice; NaN where the class is absent in truth and prediction."""
        return _ratio(
            2 * self.true_positive,
            2 * self.true_positive + self.false_positive + self.false_negative,
        )


@dataclass(eq=False)
class ClassCounts(RatesFromCounts):
    """Per-class true/false positive/negative pixel counts, each (K,) int64, over valid pixels.

    Accumulate with `add` (in place) or `+`; read scores with `jaccard`, `precision`, `recall`
    and `f1`, which are NaN where undefined (the class is absent in truth and prediction).
    """

    true_positive: np.ndarray
    false_positive: np.ndarray
    false_negative: np.ndarray
    true_negative: np.ndarray

    @classmethod
    def zeros(cls, num_classes: int) -> ClassCounts:
        """Counts of nothing yet, for `num_classes` classes."""
        return cls(*(np.zeros(num_classes, dtype=np.int64) for _ in range(4)))

    @property
    def num_classes(self) -> int:
        return int(self.true_positive.shape[0])

    def add(
        self, predicted: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None = None
    ) -> None:
        """Count one patch or batch, skipping ignored pixels. Updates the counts in place.

        Args:
            predicted: (K, H, W) or (N, K, H, W) bool (anything else is read as nonzero = True).
            truth: the same shape as `predicted`.
            ignore: (H, W) or (N, H, W) bool, True for pixels excluded from the counts.
        """
        predicted_4d, truth_4d, valid = _batched(predicted, truth, ignore, self.num_classes)
        predicted_4d = predicted_4d.astype(bool, copy=False)
        truth_4d = truth_4d.astype(bool, copy=False)
        if valid is not None:
            valid_4d = valid[:, None]
            predicted_4d = predicted_4d & valid_4d
            truth_4d = truth_4d & valid_4d
            valid_pixels = int(np.count_nonzero(valid))
        else:
            valid_pixels = int(np.prod(predicted_4d.shape[:1] + predicted_4d.shape[2:]))
        # Three counts give all four: every other cell of the table is a difference.
        axes = (0, 2, 3)
        both = np.count_nonzero(predicted_4d & truth_4d, axis=axes).astype(np.int64)
        predicted_count = np.count_nonzero(predicted_4d, axis=axes).astype(np.int64)
        truth_count = np.count_nonzero(truth_4d, axis=axes).astype(np.int64)
        self.true_positive += both
        self.false_positive += predicted_count - both
        self.false_negative += truth_count - both
        self.true_negative += valid_pixels - predicted_count - truth_count + both

    def __add__(self, other: ClassCounts) -> ClassCounts:
        if other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot add counts of {other.num_classes} and {self.num_classes} classes"
            )
        return ClassCounts(
            self.true_positive + other.true_positive,
            self.false_positive + other.false_positive,
            self.false_negative + other.false_negative,
            self.true_negative + other.true_negative,
        )

    def mean_jaccard(self) -> float:
        """Mean Jaccard over the classes present in truth or prediction."""
        return mean_over_present(self.jaccard())

    def as_dict(self) -> dict[str, list[int]]:
        """Plain lists, for JSON, CSV and checkpoints."""
        return {
            "true_positive": self.true_positive.tolist(),
            "false_positive": self.false_positive.tolist(),
            "false_negative": self.false_negative.tolist(),
            "true_negative": self.true_negative.tolist(),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Sequence[int]]) -> ClassCounts:
        """The inverse of `as_dict`."""
        return cls(
            *(
                np.asarray(values[name], dtype=np.int64)
                for name in ("true_positive", "false_positive", "false_negative", "true_negative")
            )
        )


class ThresholdSweep:
    """Counts at many thresholds at once, to choose per-class thresholds that maximise Jaccard.

    Each probability is binned once by the thresholds it passes (a histogram per class and truth
    value); the counts at every threshold are then cumulative sums of the histogram. Memory is
    (K, 2, T + 1) integers whatever the number of pixels added, and each `add` costs one
    `searchsorted` and one `bincount` over the batch instead of T full comparisons.

    Example:
        >>> sweep = ThresholdSweep(1, thresholds=[0.3, 0.5, 0.7])
        >>> sweep.add(np.array([[[0.2, 0.4, 0.6, 0.8]]]), np.array([[[0, 1, 1, 1]]], dtype=bool))
        >>> sweep.best()[0].tolist()
        [0.3]
    """

    def __init__(self, num_classes: int, thresholds: Sequence[float] = DEFAULT_THRESHOLDS) -> None:
        values = np.unique(np.asarray(thresholds, dtype=np.float64))
        if values.size == 0 or values.min() < 0 or values.max() > 1:
            raise ConfigError(f"thresholds must be between 0 and 1, got {list(thresholds)}")
        self.num_classes = num_classes
        self.thresholds = values
        # histogram[k, t, b]: pixels of class k with truth t that pass exactly b thresholds.
        self._histogram = np.zeros((num_classes, 2, values.size + 1), dtype=np.int64)

    def add(self, probs: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None = None) -> None:
        """Count a batch of probabilities against its truth, skipping ignored pixels.

        Args:
            probs: (K, H, W) or (N, K, H, W) probabilities.
            truth: bool of the same shape.
            ignore: (H, W) or (N, H, W) bool, True for pixels excluded from the counts.
        """
        probs_4d, truth_4d, valid = _batched(probs, truth, ignore, self.num_classes)
        if not np.issubdtype(probs_4d.dtype, np.floating):
            probs_4d = probs_4d.astype(np.float32)
        # Compare in the probabilities' own precision, exactly as `binarize` does.
        passed = np.searchsorted(
            thresholds_in_dtype(self.thresholds, probs_4d.dtype), probs_4d, side="right"
        )
        bins = self.thresholds.size + 1
        class_index = np.arange(self.num_classes, dtype=np.int64).reshape(1, -1, 1, 1)
        codes = (class_index * 2 + truth_4d.astype(bool)) * bins + passed
        if valid is not None:
            codes = codes[np.broadcast_to(valid[:, None], codes.shape)]
        histogram = np.bincount(codes.ravel(), minlength=self._histogram.size)
        self._histogram += histogram.reshape(self._histogram.shape)

    def _counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(K, T) true/false positives/negatives at each threshold."""
        # Pixels predicted at threshold j are those that pass more than j thresholds.
        passing = np.cumsum(self._histogram[..., ::-1], axis=-1)[..., ::-1][..., 1:]
        true_positive, false_positive = passing[:, 1], passing[:, 0]
        totals = self._histogram.sum(axis=-1)
        false_negative = totals[:, 1, None] - true_positive
        true_negative = totals[:, 0, None] - false_positive
        return true_positive, false_positive, false_negative, true_negative

    def counts_at(self, threshold: float) -> ClassCounts:
        """The counts at one of the sweep's thresholds (e.g. 0.5) for every class."""
        matches = np.flatnonzero(np.isclose(self.thresholds, threshold, rtol=0, atol=1e-9))
        if matches.size == 0:
            raise ConfigError(
                f"threshold {threshold} is not in the sweep; it has {self.thresholds.tolist()}"
            )
        index = int(matches[0])
        return ClassCounts(*(np.ascontiguousarray(count[:, index]) for count in self._counts()))

    def jaccard(self) -> np.ndarray:
        """(K, T) Jaccard of each class at each threshold (NaN where undefined)."""
        true_positive, false_positive, false_negative, _ = self._counts()
        return _ratio(true_positive, true_positive + false_positive + false_negative)

    def best(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-class thresholds with the highest Jaccard, and that Jaccard, both (K,).

        Ties go to the threshold nearest 0.5, the least surprising choice. A class absent from
        the truth has nothing to tune on: it keeps 0.5 and reports its Jaccard there.
        """
        scores = self.jaccard()
        has_truth = self._histogram[:, 1].sum(axis=-1) > 0
        default = 0.5
        thresholds = np.full(self.num_classes, default)
        best_scores = np.full(self.num_classes, np.nan)
        at_default = np.flatnonzero(np.isclose(self.thresholds, default, rtol=0, atol=1e-9))
        preference = np.argsort(np.abs(self.thresholds - default), kind="stable")
        for k in range(self.num_classes):
            if has_truth[k]:
                ordered = scores[k, preference]
                index = int(preference[int(np.argmax(ordered))])
                thresholds[k] = self.thresholds[index]
                best_scores[k] = scores[k, index]
            elif at_default.size:
                best_scores[k] = scores[k, at_default[0]]
        return thresholds, best_scores


def _batched(
    first: np.ndarray, second: np.ndarray, ignore: np.ndarray | None, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The inputs as (N, K, H, W), (N, K, H, W) and (N, H, W) valid, after checking shapes."""
    if first.shape != second.shape:
        raise ValueError(f"prediction {first.shape} and truth {second.shape} differ in shape")
    if first.ndim == 3:
        first, second = first[None], second[None]
        if ignore is not None:
            ignore = ignore[None]
    if first.ndim != 4 or first.shape[1] != num_classes:
        raise ValueError(
            f"expected (K, H, W) or (N, K, H, W) with K = {num_classes}, got {first.shape}"
        )
    if ignore is None:
        return first, second, None
    expected = (first.shape[0], *first.shape[2:])
    if ignore.shape != expected:
        raise ValueError(f"ignore {ignore.shape} does not fit prediction {first.shape}")
    return first, second, ~ignore.astype(bool, copy=False)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator as float64, NaN where the denominator is 0 (undefined)."""
    result = np.full(np.shape(numerator), np.nan)
    np.divide(numerator, denominator, out=result, where=denominator > 0)
    return result
