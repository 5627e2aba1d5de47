"""The model's head and the one rule that turns its probabilities into class masks.

A sigmoid head is multi-label: each class has its own probability, and a pixel is in a class
when `probability >= threshold` (the rule training tunes the thresholds with), except that a
threshold of 1 selects nothing, so 0 selects every valid pixel and 1 none. A softmax head is
multi-class: a pixel is in its most probable class, whatever the thresholds. NaN
probabilities (no prediction) are in no class.

Training (`train/metrics`), prediction (`predict/outputs`, `predict/tta_choice`) and
post-processing (`postprocess/chain`) all import these functions; none holds its own copy.
Pure numpy: nothing here needs torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

__all__ = [
    "HEADS",
    "Head",
    "apply_thresholds",
    "binarize",
    "class_masks",
    "most_probable",
    "most_probable_position",
    "thresholds_in_dtype",
]

Head = Literal["sigmoid", "softmax"]
HEADS: tuple[Head, ...] = ("sigmoid", "softmax")


def binarize(probs: np.ndarray, thresholds: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """Bool masks `probs >= threshold`, with one threshold for all classes or one per class.

    This is the comparison training sweeps thresholds with; `apply_thresholds` adds the
    "1 selects nothing" convention used at prediction time.

    Args:
        probs: (K, H, W) or (N, K, H, W) probabilities.
        thresholds: a scalar or (K,) per-class thresholds.

    Example:
        >>> binarize(np.array([[[0.2, 0.5]], [[0.2, 0.5]]]), [0.5, 0.1]).astype(int).tolist()
        [[[0, 1]], [[1, 1]]]
    """
    values = np.asarray(thresholds, dtype=np.float64)
    if values.ndim == 0:
        return np.asarray(probs >= thresholds_in_dtype(values, probs.dtype))
    class_axis = probs.ndim - 3
    if values.shape != (probs.shape[class_axis],):
        raise ValueError(
            f"{values.size} thresholds for {probs.shape[class_axis]} classes in probs {probs.shape}"
        )
    shape = [1] * probs.ndim
    shape[class_axis] = values.size
    return np.asarray(probs >= thresholds_in_dtype(values, probs.dtype).reshape(shape))


def apply_thresholds(probs: np.ndarray, thresholds: Sequence[float] | np.ndarray) -> np.ndarray:
    """(K, H, W) bool masks: `probs >= threshold`, nothing at threshold 1, never NaN pixels.

    Example:
        >>> probs = np.array([[[0.0, 0.5, 1.0]], [[0.0, 0.5, 1.0]]], dtype=np.float32)
        >>> apply_thresholds(probs, [0.0, 1.0]).astype(int).tolist()
        [[[1, 1, 1]], [[0, 0, 0]]]
    """
    values = np.asarray(thresholds, dtype=np.float64)
    mask = binarize(probs, values)
    mask &= (values < 1.0).reshape(-1, *([1] * (probs.ndim - 1)))
    return mask


def most_probable_position(probs: np.ndarray) -> np.ndarray:
    """(H, W) int: the position of the most probable class (the first of equal ones).

    NaN counts as less than any probability; callers mark invalid pixels themselves.

    Example:
        >>> most_probable_position(np.array([[[0.2, 0.9]], [[0.8, 0.1]]])).tolist()
        [[1, 0]]
    """
    return np.asarray(np.argmax(np.nan_to_num(probs, nan=-1.0), axis=0))


def most_probable(probs: np.ndarray) -> np.ndarray:
    """(K, H, W) bool one-hot of the most probable class; nothing where a probability is NaN.

    Example:
        >>> most_probable(np.array([[[0.2, np.nan]], [[0.8, 0.5]]])).astype(int).tolist()
        [[[0, 0]], [[1, 0]]]
    """
    best = most_probable_position(probs)
    valid = ~np.isnan(probs).any(axis=0)
    classes = np.arange(probs.shape[0]).reshape(-1, 1, 1)
    return np.asarray((best[None] == classes) & valid[None])


def class_masks(
    probs: np.ndarray, thresholds: Sequence[float] | np.ndarray, head: Head
) -> np.ndarray:
    """(K, H, W) bool class masks by the head's rule: thresholds (sigmoid) or argmax (softmax).

    Example:
        >>> probs = np.array([[[0.6, 0.2]], [[0.7, 0.1]]])
        >>> class_masks(probs, [0.5, 0.5], "sigmoid").astype(int).tolist()
        [[[1, 0]], [[1, 0]]]
        >>> class_masks(probs, [0.5, 0.5], "softmax").astype(int).tolist()
        [[[0, 1]], [[1, 0]]]
    """
    if head == "softmax":
        return most_probable(probs)
    return apply_thresholds(probs, thresholds)


def thresholds_in_dtype(values: np.ndarray, dtype: np.dtype[np.generic]) -> np.ndarray:
    """Thresholds in the probabilities' float type, so 0.05 compares equal to float32(0.05)."""
    if np.issubdtype(dtype, np.floating):
        return values.astype(dtype)
    return values
