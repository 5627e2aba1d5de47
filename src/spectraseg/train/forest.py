"""The per-pixel random forest baseline: the "traditional machine learning" the U-Net must beat.

A scikit-learn `RandomForestClassifier` is trained on a class-balanced sample of pixels (each
pixel a vector of the same bands, indices and normalization the U-Net sees), then converted to
plain node arrays. Saving those arrays needs no pickle, and prediction walks them in vectorized
numpy, so a loaded model never touches sklearn objects.

Multi-label: one multi-output forest, not one binary forest per class. Each tree predicts every
class at once (sklearn's multi-output trees, splits chosen on the summed impurity of all
classes), which costs one fit and one traversal instead of K, and works unchanged when classes
are exclusive. A leaf stores, per class, the share of its training pixels in that class.

Pixels are drawn by `sample_pixels`: each class (and "no class") is a stratum; strata get pixels
in proportion to `count ** (1 - balance)`, so `balance=1` gives every stratum the same number
(`balance=0` draws uniformly from all valid pixels). A stratum with fewer pixels than its share
gives all it has and the rest goes to the others. Rare classes are thus over-represented, which
shifts the forest's probabilities towards them; the per-class thresholds tuned on validation
pixels absorb that.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field

from spectraseg.errors import CheckpointError, DataError
from spectraseg.settings import Settings

__all__ = [
    "ForestModel",
    "ForestSettings",
    "fit_forest",
    "forest_from_sklearn",
    "sample_pixels",
]

logger = logging.getLogger(__name__)

# Rows walked through the trees at once by `ForestModel.predict_proba`.
_BLOCK_ROWS = 65_536

# Keys of `ForestModel.to_arrays`, the stored form of a forest.
_ARRAY_KEYS = (
    "roots",
    "depths",
    "children_left",
    "children_right",
    "feature",
    "threshold",
    "value",
    "in_channels",
)


class ForestSettings(Settings):
    """Settings of the random forest baseline (YAML section `forest`)."""

    trees: int = Field(default=32, ge=1)
    # Depth and leaf size bound the node count, hence the checkpoint size and prediction time:
    # 32 trees of depth 16 on 200k pixels hold about 0.5 M nodes (≈ 20 MB with 10 classes).
    max_depth: int | None = Field(default=16, ge=1)
    min_samples_leaf: int = Field(default=4, ge=1)
    max_features: Literal["sqrt", "log2"] | float = "sqrt"  # per split; a float is a share
    max_pixels: int = Field(default=200_000, ge=1)  # the training sample's size at most
    # 0 draws pixels uniformly, 1 gives each class (and "no class") the same number.
    balance: float = Field(default=0.5, ge=0.0, le=1.0)
    seed: int = 0
    n_jobs: int = -1  # threads for fitting; -1 uses every CPU


def sample_pixels(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    ignored: Sequence[np.ndarray],
    *,
    max_pixels: int,
    balance: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A class-balanced sample of valid pixels from several images, as feature and label rows.

    Ignored pixels and pixels with a non-finite channel are never drawn. See the module
    docstring for how `balance` shares `max_pixels` among the classes; a pixel drawn for two
    of its classes counts once, so the sample may be a little smaller than the cap.

    Args:
        images: (C, H, W) float arrays, one per scene (sizes may differ).
        masks: (K, H, W) bool, the matching labels.
        ignored: (H, W) bool, True for pixels to leave out.

    Returns:
        Pixels (N, C) float32 and their labels (N, K) bool, N <= max_pixels.
    """
    channels, num_classes = _check_inputs(images, masks, ignored)
    rng = np.random.default_rng(seed)
    valid = [_valid_pixels(image, skip) for image, skip in zip(images, ignored, strict=True)]
    # Strata 0..K-1 are the classes, stratum K the pixels in no class; without balancing one
    # stratum (None) holds every valid pixel, so that the draw is uniform even where classes
    # overlap.
    strata: list[int | None] = list(range(num_classes + 1)) if balance > 0 else [None]
    counts = np.zeros(len(strata), dtype=np.int64)
    for mask, usable in zip(masks, valid, strict=True):
        counts += [int(np.count_nonzero(_stratum(mask, usable, s))) for s in strata]
    total_valid = sum(int(np.count_nonzero(usable)) for usable in valid)
    if total_valid == 0:
        raise DataError(
            "no valid labelled pixel to train on: every pixel is ignored or has a non-finite "
            "channel. Check the labels' extent and the rasters' nodata."
        )
    allocation = _allocate(counts, max_pixels, balance)
    chosen: list[list[np.ndarray]] = [[] for _ in images]
    for stratum, wanted in zip(strata, allocation.tolist(), strict=True):
        if wanted == 0:
            continue
        members = [
            np.flatnonzero(_stratum(m, usable, stratum))
            for m, usable in zip(masks, valid, strict=True)
        ]
        starts = np.cumsum([0] + [len(indices) for indices in members])
        picks = np.sort(rng.choice(int(starts[-1]), size=wanted, replace=False))
        for index, indices in enumerate(members):
            local = picks[(picks >= starts[index]) & (picks < starts[index + 1])] - starts[index]
            chosen[index].append(indices[local])
    pixels, labels = [], []
    for image, mask, picked in zip(images, masks, chosen, strict=True):
        flat = np.unique(np.concatenate(picked)) if picked else np.empty(0, dtype=np.int64)
        pixels.append(image.reshape(channels, -1)[:, flat].T.astype(np.float32))
        labels.append(mask.reshape(num_classes, -1)[:, flat].T.astype(bool))
    sample = np.concatenate(pixels), np.concatenate(labels)
    logger.info(
        "sampled %d of %d valid pixels; per class %s",
        len(sample[0]),
        total_valid,
        sample[1].sum(axis=0).tolist(),
    )
    return sample


@dataclass(frozen=True, eq=False)
class ForestModel:
    """A fitted forest as flat node arrays: all trees' nodes concatenated, M nodes in all.

    Node indices are global (into the concatenation). A leaf points to itself as both children,
    so walking a tree for its depth in steps ends on its leaf whatever the path's length.

    Attributes:
        roots: (T,) int64, each tree's root node.
        depths: (T,) int64, each tree's depth (edges from root to deepest leaf).
        children_left: (M,) int32, the child for `pixel[feature] <= threshold`.
        children_right: (M,) int32, the other child.
        feature: (M,) int32, the channel a node splits on (0 at leaves).
        threshold: (M,) float32, the split value, rounded down from sklearn's float64 so that
            float32 pixels compare exactly as in sklearn.
        value: (M, K) float32, per class, the share of a leaf's training pixels in the class.
        in_channels: C, the number of channels a pixel has.
    """

    roots: np.ndarray
    depths: np.ndarray
    children_left: np.ndarray
    children_right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    in_channels: int

    @property
    def num_trees(self) -> int:
        return int(self.roots.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.value.shape[1])

    @property
    def num_nodes(self) -> int:
        return int(self.value.shape[0])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The model as named numeric arrays (no objects), for `.npz` files or tensors."""
        return {
            "roots": self.roots,
            "depths": self.depths,
            "children_left": self.children_left,
            "children_right": self.children_right,
            "feature": self.feature,
            "threshold": self.threshold,
            "value": self.value,
            "in_channels": np.asarray(self.in_channels, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> ForestModel:
        """The inverse of `to_arrays`, checking that the arrays form a forest.

        Accepts anything `np.asarray` reads (CPU torch tensors included).

        Raises:
            CheckpointError: an array is missing, or shapes or node indices do not fit.
        """
        missing = [key for key in _ARRAY_KEYS if key not in arrays]
        if missing:
            raise CheckpointError(
                f"random forest weights lack {missing}; the checkpoint is not a random-forest "
                "checkpoint or is damaged. Train it again."
            )
        try:
            model = cls(
                roots=np.asarray(arrays["roots"], dtype=np.int64).reshape(-1),
                depths=np.asarray(arrays["depths"], dtype=np.int64).reshape(-1),
                children_left=np.asarray(arrays["children_left"], dtype=np.int32),
                children_right=np.asarray(arrays["children_right"], dtype=np.int32),
                feature=np.asarray(arrays["feature"], dtype=np.int32),
                threshold=np.asarray(arrays["threshold"], dtype=np.float32),
                value=np.asarray(arrays["value"], dtype=np.float32),
                in_channels=int(np.asarray(arrays["in_channels"])),
            )
        except (TypeError, ValueError) as error:
            raise CheckpointError(
                f"random forest weights are malformed ({error}). Train it again."
            ) from None
        model._check()
        return model

    def predict_proba(self, pixels: np.ndarray) -> np.ndarray:
        """Per-class probabilities of pixel rows, the mean of the trees' leaf values.

        Equals sklearn's `predict_proba` of the forest it was made from (the probability of
        True per class). Rows with a non-finite channel get probability 0 in every class.

        Args:
            pixels: (N, C) float; converted to float32, as sklearn does.

        Returns:
            (N, K) float32.
        """
        rows = np.ascontiguousarray(pixels, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.in_channels:
            raise ValueError(f"expected pixels (N, {self.in_channels}), got {rows.shape}")
        finite = np.asarray(np.isfinite(rows).all(axis=1))
        if not finite.all():
            rows = np.where(finite[:, None], rows, 0.0).astype(np.float32)
        # Blocks of rows keep the walk's temporaries in cache (measured fastest near 64k rows).
        probs = np.empty((rows.shape[0], self.num_classes), dtype=np.float32)
        for start in range(0, rows.shape[0], _BLOCK_ROWS):
            block = rows[start : start + _BLOCK_ROWS]
            probs[start : start + len(block)] = self._mean_leaf_value(block)
        probs[~finite] = 0.0
        return probs

    def _mean_leaf_value(self, rows: np.ndarray) -> np.ndarray:
        """(N, K) mean over trees of the leaf value each row (N, C) float32 lands in."""
        total = np.zeros((rows.shape[0], self.num_classes), dtype=np.float64)
        flat_rows = rows.reshape(-1)
        row_starts = np.arange(rows.shape[0], dtype=np.int64) * self.in_channels
        # Two children side by side: one gather picks the child from the comparison's outcome.
        children = np.stack([self.children_left, self.children_right], axis=1).reshape(-1)
        # Tree by tree keeps one tree's nodes hot in cache while every row walks it; all rows
        # take as many steps as the tree is deep (leaves point to themselves).
        for root, depth in zip(self.roots.tolist(), self.depths.tolist(), strict=True):
            node = np.full(rows.shape[0], root, dtype=np.int64)
            for _ in range(depth):
                values = flat_rows[row_starts + self.feature[node]]
                goes_right = values > self.threshold[node]
                node = children[2 * node + goes_right].astype(np.int64)
            total += self.value[node]
        return (total / self.num_trees).astype(np.float32)

    def predict_image(self, image: np.ndarray, *, chunk_pixels: int = 262_144) -> np.ndarray:
        """Class probabilities of every pixel of an image, computed in chunks of pixels.

        Memory beyond the output: the chunk as float32 rows, and per 64k-row block about
        (8 K + 40) bytes a row.

        Args:
            image: (C, H, W) float, normalized as in training; non-finite pixels get 0.

        Returns:
            probs (K, H, W) float32.
        """
        if image.ndim != 3 or image.shape[0] != self.in_channels:
            raise ValueError(f"expected an image ({self.in_channels}, H, W), got {image.shape}")
        _, height, width = image.shape
        flat = image.reshape(self.in_channels, -1)
        probs = np.empty((self.num_classes, height * width), dtype=np.float32)
        for start in range(0, height * width, chunk_pixels):
            stop = min(start + chunk_pixels, height * width)
            probs[:, start:stop] = self.predict_proba(flat[:, start:stop].T).T
        return probs.reshape(self.num_classes, height, width)

    def _check(self) -> None:
        """Raise CheckpointError unless the arrays describe a forest this code can walk."""
        nodes = self.value.shape[0] if self.value.ndim == 2 else -1
        problems = []
        if nodes < 1 or self.value.shape[1] < 1:
            problems.append(f"value has shape {self.value.shape}, expected (nodes, classes)")
        for name in ("children_left", "children_right", "feature", "threshold"):
            if getattr(self, name).shape != (nodes,):
                problems.append(
                    f"{name} has shape {getattr(self, name).shape}, expected ({nodes},)"
                )
        if self.roots.shape != self.depths.shape or self.roots.size == 0:
            problems.append(
                f"roots {self.roots.shape} and depths {self.depths.shape} differ or are empty"
            )
        if not problems:
            indices = np.concatenate([self.roots, self.children_left, self.children_right])
            if indices.min() < 0 or indices.max() >= nodes:
                problems.append("a node index is out of range")
            if (
                self.in_channels < 1
                or self.feature.min() < 0
                or self.feature.max() >= self.in_channels
            ):
                problems.append(f"a split feature is outside 0..{self.in_channels - 1}")
            if self.depths.min() < 0:
                problems.append("a tree depth is negative")
        if problems:
            raise CheckpointError(
                f"random forest weights are malformed: {'; '.join(problems)}. Train it again."
            )


def fit_forest(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    ignored: Sequence[np.ndarray],
    settings: ForestSettings | None = None,
) -> ForestModel:
    """Fit the random forest on a class-balanced pixel sample of the training images.

    Args:
        images: (C, H, W) float, already with indices appended and normalized.
        masks: (K, H, W) bool labels; classes may overlap.
        ignored: (H, W) bool, True for pixels left out (nodata, unlabelled, ignore label).
        settings: `ForestSettings()` when omitted.

    Raises:
        DataError: the inputs disagree in shape, or no pixel is valid.
    """
    from sklearn.ensemble import RandomForestClassifier

    settings = settings or ForestSettings()
    pixels, labels = sample_pixels(
        images,
        masks,
        ignored,
        max_pixels=settings.max_pixels,
        balance=settings.balance,
        seed=settings.seed,
    )
    forest = RandomForestClassifier(
        n_estimators=settings.trees,
        max_depth=settings.max_depth,
        min_samples_leaf=settings.min_samples_leaf,
        max_features=settings.max_features,
        n_jobs=settings.n_jobs,
        random_state=settings.seed,
    )
    # A single column would make sklearn warn and treat it as one output anyway.
    targets = labels[:, 0] if labels.shape[1] == 1 else labels
    forest.fit(pixels, targets.astype(np.uint8))
    model = forest_from_sklearn(forest, in_channels=pixels.shape[1], num_classes=labels.shape[1])
    logger.info("random forest: %d trees, %d nodes", model.num_trees, model.num_nodes)
    return model


def forest_from_sklearn(forest: Any, *, in_channels: int, num_classes: int) -> ForestModel:
    """Node arrays of a fitted sklearn `RandomForestClassifier` with 0/1 targets per class."""
    estimators = forest.estimators_
    class_lists = forest.classes_
    if num_classes == 1:
        class_lists = [class_lists]
    roots, depths, left, right, feature, threshold, value = [], [], [], [], [], [], []
    offset = 0
    for estimator in estimators:
        tree = estimator.tree_
        count = int(tree.node_count)
        is_leaf = tree.children_left < 0
        own = np.arange(count, dtype=np.int64)
        left.append(np.where(is_leaf, own, tree.children_left) + offset)
        right.append(np.where(is_leaf, own, tree.children_right) + offset)
        feature.append(np.where(is_leaf, 0, tree.feature))
        threshold.append(np.where(is_leaf, 0.0, tree.threshold))
        value.append(_share_in_class(np.asarray(tree.value, dtype=np.float64), class_lists))
        roots.append(offset)
        depths.append(int(tree.max_depth))
        offset += count
    return ForestModel(
        roots=np.asarray(roots, dtype=np.int64),
        depths=np.asarray(depths, dtype=np.int64),
        children_left=np.concatenate(left).astype(np.int32),
        children_right=np.concatenate(right).astype(np.int32),
        feature=np.concatenate(feature).astype(np.int32),
        threshold=_float32_at_most(np.concatenate(threshold)),
        value=np.concatenate(value).astype(np.float32),
        in_channels=in_channels,
    )


def _share_in_class(value: np.ndarray, class_lists: Sequence[np.ndarray]) -> np.ndarray:
    """(nodes, K) share of each node's (weighted) pixels in class k, from sklearn's tree value.

    sklearn stores (nodes, K, max_classes); an output that saw only one label has one column.
    """
    shares = np.zeros((value.shape[0], len(class_lists)), dtype=np.float64)
    for k, classes in enumerate(class_lists):
        labels = np.asarray(classes).tolist()
        if 1 not in labels:
            continue
        columns = value[:, k, : len(labels)]
        totals = columns.sum(axis=1)
        totals[totals == 0] = 1.0
        shares[:, k] = columns[:, labels.index(1)] / totals
    return shares


def _float32_at_most(threshold: np.ndarray) -> np.ndarray:
    """The largest float32 <= each float64 threshold: for float32 x, x <= t32 iff x <= t."""
    rounded = threshold.astype(np.float32)
    too_high = rounded.astype(np.float64) > threshold
    rounded[too_high] = np.nextafter(rounded[too_high], np.float32(-np.inf))
    return rounded


def _valid_pixels(image: np.ndarray, skip: np.ndarray) -> np.ndarray:
    """(H*W,) bool: pixels not ignored and finite in every channel."""
    return np.asarray(
        ~skip.reshape(-1) & np.isfinite(image.reshape(image.shape[0], -1)).all(axis=0)
    )


def _stratum(mask: np.ndarray, valid: np.ndarray, stratum: int | None) -> np.ndarray:
    """(H*W,) bool: valid pixels of class `stratum`, in no class when it is K, all when None."""
    if stratum is None:
        return valid
    flat = mask.reshape(mask.shape[0], -1)
    if stratum < flat.shape[0]:
        return np.asarray(flat[stratum].astype(bool) & valid)
    return np.asarray(valid & ~flat.any(axis=0))


def _allocate(counts: np.ndarray, budget: int, balance: float) -> np.ndarray:
    """Pixels to draw from each stratum: shares ∝ count^(1 - balance), capped at the count.

    A stratum whose share exceeds its count gives all its pixels, and what it could not use is
    shared among the others in the same proportions (water filling).

    Example:
        >>> _allocate(np.array([1000, 10, 0]), 100, 1.0).tolist()
        [90, 10, 0]
    """
    allocation = np.zeros_like(counts)
    open_strata = counts > 0
    remaining = budget
    weights = np.where(open_strata, counts.astype(np.float64) ** (1.0 - balance), 0.0)
    while open_strata.any() and remaining > 0:
        shares = remaining * weights * open_strata / weights[open_strata].sum()
        full = open_strata & (shares >= counts)
        if not full.any():
            allocation[open_strata] = np.floor(shares[open_strata]).astype(np.int64)
            break
        allocation[full] = counts[full]
        remaining -= int(counts[full].sum())
        open_strata &= ~full
    return allocation


def _check_inputs(
    images: Sequence[np.ndarray], masks: Sequence[np.ndarray], ignored: Sequence[np.ndarray]
) -> tuple[int, int]:
    """(C, K) after checking that the images, masks and ignore masks fit together."""
    if not images:
        raise DataError("no training image: give at least one scene with labels")
    if not len(images) == len(masks) == len(ignored):
        raise DataError(
            f"{len(images)} images, {len(masks)} masks and {len(ignored)} ignore masks: "
            "give one of each per scene"
        )
    channels, num_classes = images[0].shape[0], masks[0].shape[0]
    for index, (image, mask, skip) in enumerate(zip(images, masks, ignored, strict=True)):
        if image.ndim != 3 or image.shape[0] != channels:
            raise DataError(
                f"image {index} has shape {image.shape}; expected ({channels}, H, W) like image 0"
            )
        if mask.shape != (num_classes, *image.shape[1:]):
            raise DataError(
                f"mask {index} has shape {mask.shape}; expected {(num_classes, *image.shape[1:])}"
            )
        if skip.shape != image.shape[1:]:
            raise DataError(
                f"ignore mask {index} has shape {skip.shape}; expected {image.shape[1:]}"
            )
    if num_classes < 1:
        raise DataError("the masks have no class: give at least one class")
    return channels, num_classes
