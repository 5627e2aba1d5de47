"""Scores the way the field reports them: per class over all pixels of all scenes, then averaged.

Pixel scores (Jaccard, precision, recall, F1) come from true/false positive/negative counts
summed over every non-ignored pixel of every scene, per class (the DSTL leaderboard's way), and
are computed by `spectraseg.train.metrics.ClassCounts`, the same code training uses. The mean
Jaccard averages the classes present in the truth or the prediction of at least one scene.

Empty cases, defined:
- a class absent from truth and prediction everywhere: every score n/a (NaN, `null` in JSON),
  and it does not enter the mean;
- predicted but absent from the truth: Jaccard 0, precision 0, recall n/a, F1 0;
- in the truth but never predicted: Jaccard 0, precision n/a, recall 0, F1 0;
- no class present anywhere: the mean Jaccard is n/a;
- a scene whose pixels are all ignored contributes nothing; its own row is n/a.

Optional object scores (as SpaceNet scores buildings): 4-connected objects of each class in
prediction and truth, ignored pixels removed first, matched one to one at IoU >= 0.5 (highest
IoU first); precision, recall and F1 over the matched counts of all scenes.

Multi-class runs (a prediction of one class per pixel, truth with at most one class per pixel)
also get a confusion matrix: rows are the truth, columns the prediction, label 0 background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from spectraseg.train.metrics import ClassCounts, RatesFromCounts, mean_over_present

OBJECT_IOU = 0.5
OBJECT_STRUCTURE = ndimage.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class ObjectCounts(RatesFromCounts):
    """Per-class matched objects (true positives), unmatched predictions and unmatched truth.

    Precision, recall and F1 come from `RatesFromCounts`, the same formulas as pixel scores.
    """

    true_positive: np.ndarray
    false_positive: np.ndarray
    false_negative: np.ndarray

    @classmethod
    def zeros(cls, num_classes: int) -> ObjectCounts:
        return cls(*(np.zeros(num_classes, dtype=np.int64) for _ in range(3)))

    def __add__(self, other: ObjectCounts) -> ObjectCounts:
        return ObjectCounts(
            self.true_positive + other.true_positive,
            self.false_positive + other.false_positive,
            self.false_negative + other.false_negative,
        )


def match_objects(
    predicted: np.ndarray, truth: np.ndarray, *, iou: float = OBJECT_IOU
) -> tuple[int, int, int]:
    """(matched, predicted objects, truth objects) of two (H, W) bool masks at IoU >= `iou`.

    Example:
        >>> truth = np.zeros((4, 8), bool); truth[:2, :2] = True; truth[:2, 4:6] = True
        >>> predicted = np.zeros((4, 8), bool); predicted[:2, :3] = True
        >>> match_objects(predicted, truth)  # IoU 4/6 with the first, nothing for the second
        (1, 1, 2)
    """
    predicted_labels, predicted_count = ndimage.label(predicted, structure=OBJECT_STRUCTURE)
    truth_labels, truth_count = ndimage.label(truth, structure=OBJECT_STRUCTURE)
    if predicted_count == 0 or truth_count == 0:
        return 0, predicted_count, truth_count
    predicted_area = np.bincount(predicted_labels.ravel(), minlength=predicted_count + 1)
    truth_area = np.bincount(truth_labels.ravel(), minlength=truth_count + 1)
    both = (predicted_labels > 0) & (truth_labels > 0)
    pairs = predicted_labels[both].astype(np.int64) * (truth_count + 1) + truth_labels[both]
    codes, intersections = np.unique(pairs, return_counts=True)
    first, second = np.divmod(codes, truth_count + 1)
    unions = predicted_area[first] + truth_area[second] - intersections
    scores = intersections / unions
    order = np.argsort(-scores, kind="stable")
    used_predicted: set[int] = set()
    used_truth: set[int] = set()
    for index in order:
        if scores[index] < iou:
            break
        a, b = int(first[index]), int(second[index])
        if a not in used_predicted and b not in used_truth:
            used_predicted.add(a)
            used_truth.add(b)
    return len(used_predicted), predicted_count, truth_count


def count_objects(
    predicted: np.ndarray,
    truth: np.ndarray,
    ignore: np.ndarray | None = None,
    *,
    iou: float = OBJECT_IOU,
) -> ObjectCounts:
    """Object counts of (K, H, W) masks, ignored pixels removed from both first."""
    keep = ~ignore if ignore is not None else np.ones(predicted.shape[1:], dtype=bool)
    counts = ObjectCounts.zeros(predicted.shape[0])
    for k in range(predicted.shape[0]):
        matched, found, actual = match_objects(predicted[k] & keep, truth[k] & keep, iou=iou)
        counts.true_positive[k] = matched
        counts.false_positive[k] = found - matched
        counts.false_negative[k] = actual - matched
    return counts


def is_exclusive(mask: np.ndarray) -> bool:
    """True when no pixel of a (K, H, W) mask is in more than one class."""
    return bool((mask.sum(axis=0) <= 1).all())


def class_labels(mask: np.ndarray) -> np.ndarray:
    """(H, W) int: 0 for no class, k + 1 for class k (for exclusive masks)."""
    return np.asarray(np.argmax(mask, axis=0) + 1) * mask.any(axis=0)


def confusion_matrix(
    predicted: np.ndarray, truth: np.ndarray, ignore: np.ndarray | None = None
) -> np.ndarray:
    """(K + 1, K + 1) pixel counts of exclusive (K, H, W) masks: rows truth, columns prediction,
    label 0 background.

    Example:
        >>> truth = np.array([[[1, 0]], [[0, 1]]], bool)
        >>> predicted = np.array([[[1, 1]], [[0, 0]]], bool)
        >>> confusion_matrix(predicted, truth).tolist()
        [[0, 0, 0], [0, 1, 0], [0, 1, 0]]
    """
    size = predicted.shape[0] + 1
    keep = ~ignore if ignore is not None else np.ones(predicted.shape[1:], dtype=bool)
    codes = class_labels(truth)[keep] * size + class_labels(predicted)[keep]
    return np.bincount(codes.ravel(), minlength=size * size).reshape(size, size).astype(np.int64)


@dataclass(frozen=True)
class SceneScores:
    """The counts of one scene; scores are read from them."""

    name: str
    counts: ClassCounts
    objects: ObjectCounts | None = None
    confusion: np.ndarray | None = None


def score_scene(
    name: str,
    predicted: np.ndarray,
    truth: np.ndarray,
    ignore: np.ndarray | None = None,
    *,
    objects: bool = False,
    multiclass: bool = False,
) -> SceneScores:
    """Counts of one scene's (K, H, W) bool prediction against its truth.

    Args:
        ignore: (H, W) bool, True for pixels that do not count (unlabelled, nodata).
        objects: also count objects matched at IoU >= 0.5.
        multiclass: also build the confusion matrix when both masks are exclusive.
    """
    counts = ClassCounts.zeros(predicted.shape[0])
    counts.add(predicted, truth, ignore)
    object_counts = count_objects(predicted, truth, ignore) if objects else None
    confusion = None
    if multiclass and is_exclusive(predicted) and is_exclusive(truth):
        confusion = confusion_matrix(predicted, truth, ignore)
    return SceneScores(name, counts, object_counts, confusion)


def merge_bands(name: str, bands: Sequence[SceneScores]) -> SceneScores:
    """One scene's scores from those of its bands of rows (pixel counts add up; the confusion
    matrix too, when every band had one; objects only come from a single band)."""
    counts = bands[0].counts
    for band in bands[1:]:
        counts = counts + band.counts
    matrices = [band.confusion for band in bands]
    confusion = (
        None
        if any(m is None for m in matrices)
        else np.asarray(np.sum([m for m in matrices if m is not None], axis=0))
    )
    objects = bands[0].objects if len(bands) == 1 else None
    return SceneScores(name, counts, objects, confusion)


@dataclass(frozen=True)
class Evaluation:
    """Scores of a set of scenes: per class over all of them, and scene by scene."""

    class_names: tuple[str, ...]
    scenes: tuple[SceneScores, ...]

    @property
    def counts(self) -> ClassCounts:
        total = ClassCounts.zeros(len(self.class_names))
        for scene in self.scenes:
            total = total + scene.counts
        return total

    @property
    def objects(self) -> ObjectCounts | None:
        if not self.scenes or any(scene.objects is None for scene in self.scenes):
            return None
        total = ObjectCounts.zeros(len(self.class_names))
        for scene in self.scenes:
            assert scene.objects is not None
            total = total + scene.objects
        return total

    @property
    def confusion(self) -> np.ndarray | None:
        matrices = [scene.confusion for scene in self.scenes]
        if not matrices or any(matrix is None for matrix in matrices):
            return None
        return np.asarray(np.sum([m for m in matrices if m is not None], axis=0))

    @property
    def mean_jaccard(self) -> float:
        """Mean Jaccard over classes present in truth or prediction; NaN when none is."""
        return mean_over_present(self.counts.jaccard())


def evaluate_arrays(
    predicted: Sequence[np.ndarray],
    truth: Sequence[np.ndarray],
    class_names: Sequence[str],
    *,
    ignore: Sequence[np.ndarray | None] | None = None,
    names: Sequence[str] | None = None,
    objects: bool = False,
) -> Evaluation:
    """Scores of scenes in memory: one (K, H, W) bool prediction and truth per scene."""
    ignores = list(ignore) if ignore is not None else [None] * len(predicted)
    scene_names = list(names) if names is not None else [f"scene_{i}" for i in range(len(truth))]
    scenes = tuple(
        score_scene(n, p, t, i, objects=objects)
        for n, p, t, i in zip(scene_names, predicted, truth, ignores, strict=True)
    )
    return Evaluation(tuple(class_names), scenes)
