"""The index-threshold baseline: one channel, one threshold and one direction per class.

Some classes are separated by a single spectral index better than by anything learned: the DSTL
3rd place found water by thresholding CCCI/NDWI. For each class this chooses, on a uniform sample
of training pixels, the channel (a spectral index or any band), threshold and direction
(`>=` or `<=`) with the highest Jaccard. Classes no channel separates get their best rule all the
same, and its training Jaccard says how far from separable they are.

Every cut between two distinct sample values is tried, exactly: the values are sorted once per
channel, and a cut's true positives are a cumulative sum of the labels in that order, so the
counts at all cuts cost one sort and one `cumsum` per class (`ClassCounts` turns them into
Jaccard). The chosen threshold is the middle of the gap between the values on either side of the
cut. The sample is uniform, not class-balanced, because Jaccard depends on how common a class is.

The output is soft: a logistic of the distance to the threshold, `softness` channel standard
deviations wide, so that a probability >= 0.5 reproduces the rule exactly and the per-class
thresholds tuned later on probabilities can still move the cut a little.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from spectraseg.errors import CheckpointError, ConfigError, did_you_mean
from spectraseg.settings import Settings
from spectraseg.train.forest import sample_pixels
from spectraseg.train.metrics import ClassCounts

__all__ = [
    "IndexThresholdModel",
    "IndexThresholdSettings",
    "ThresholdRule",
    "fit_index_threshold",
]

logger = logging.getLogger(__name__)

# The largest float32 below 0.5: the probability of a pixel the rule rejects is at most this.
_BELOW_HALF = np.nextafter(np.float32(0.5), np.float32(0.0))

_ARRAY_KEYS = ("channel", "threshold", "direction", "scale", "train_jaccard", "in_channels")


class IndexThresholdSettings(Settings):
    """Settings of the index-threshold baseline (YAML section `index_threshold`)."""

    # Channels to choose from, by name (e.g. ["ndwi", "ccci"]); None tries every channel.
    channels: tuple[str, ...] | None = None
    max_pixels: int = Field(default=500_000, ge=1)  # uniform sample the rules are chosen on
    # Width of the soft output's logistic, in standard deviations of the chosen channel.
    softness: float = Field(default=0.01, gt=0.0)
    # A class whose best rule stays below this training Jaccard is logged as not separable.
    warn_below: float = Field(default=0.5, ge=0.0, le=1.0)
    seed: int = 0


@dataclass(frozen=True)
class ThresholdRule:
    """The rule chosen for one class, for logs and reports."""

    class_name: str
    channel_name: str
    threshold: float
    direction: Literal[">=", "<="]
    train_jaccard: float  # NaN when the class has no training pixel

    def __str__(self) -> str:
        return (
            f"{self.class_name}: {self.channel_name} {self.direction} {self.threshold:.6g} "
            f"(train Jaccard {self.train_jaccard:.3f})"
        )


@dataclass(frozen=True, eq=False)
class IndexThresholdModel:
    """One rule per class: `image[channel] >= threshold` (direction +1) or `<=` (direction -1).

    Attributes:
        channel: (K,) int64, the channel each class is read from.
        threshold: (K,) float64, in the channel's units; +inf with direction +1 for a class
            never seen in training, which is then never predicted.
        direction: (K,) int64, +1 for `>=`, -1 for `<=`.
        scale: (K,) float64, the logistic's width in the channel's units.
        train_jaccard: (K,) float64, the rule's Jaccard on the training sample.
        in_channels: C, the number of channels an image has.
        channel_names: names of the C channels, for `summary`; not part of `to_arrays`.
    """

    channel: np.ndarray
    threshold: np.ndarray
    direction: np.ndarray
    scale: np.ndarray
    train_jaccard: np.ndarray
    in_channels: int
    channel_names: tuple[str, ...] | None = None

    @property
    def num_classes(self) -> int:
        return int(self.channel.shape[0])

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The rules as named numeric arrays, for `.npz` files or tensors."""
        return {
            "channel": self.channel,
            "threshold": self.threshold,
            "direction": self.direction,
            "scale": self.scale,
            "train_jaccard": self.train_jaccard,
            "in_channels": np.asarray(self.in_channels, dtype=np.int64),
        }

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], *, channel_names: Sequence[str] | None = None
    ) -> IndexThresholdModel:
        """The inverse of `to_arrays`; `channel_names` (bands then indices) label the summary.

        Raises:
            CheckpointError: an array is missing or the arrays do not fit together.
        """
        missing = [key for key in _ARRAY_KEYS if key not in arrays]
        if missing:
            raise CheckpointError(
                f"index-threshold weights lack {missing}; the checkpoint is not an "
                "index-threshold checkpoint or is damaged. Train it again."
            )
        model = cls(
            channel=np.asarray(arrays["channel"], dtype=np.int64).reshape(-1),
            threshold=np.asarray(arrays["threshold"], dtype=np.float64).reshape(-1),
            direction=np.asarray(arrays["direction"], dtype=np.int64).reshape(-1),
            scale=np.asarray(arrays["scale"], dtype=np.float64).reshape(-1),
            train_jaccard=np.asarray(arrays["train_jaccard"], dtype=np.float64).reshape(-1),
            in_channels=int(np.asarray(arrays["in_channels"])),
            channel_names=tuple(channel_names) if channel_names is not None else None,
        )
        problems = []
        sizes = {len(model.channel), len(model.threshold), len(model.direction), len(model.scale)}
        if len(sizes | {len(model.train_jaccard)}) != 1 or model.num_classes == 0:
            problems.append("the per-class arrays differ in length or are empty")
        elif model.channel.min() < 0 or model.channel.max() >= model.in_channels:
            problems.append(f"a channel is outside 0..{model.in_channels - 1}")
        elif not np.isin(model.direction, (-1, 1)).all() or not (model.scale > 0).all():
            problems.append("a direction is not +1/-1 or a scale is not positive")
        if channel_names is not None and len(channel_names) != model.in_channels:
            problems.append(f"{len(channel_names)} channel names for {model.in_channels} channels")
        if problems:
            raise CheckpointError(
                f"index-threshold weights are malformed: {'; '.join(problems)}. Train it again."
            )
        return model

    def predict_image(self, image: np.ndarray) -> np.ndarray:
        """Soft class probabilities whose >= 0.5 cut is exactly each class's rule.

        Args:
            image: (C, H, W) float, the channels the rules were fitted on (same normalization).
                Pixels whose chosen channel is not finite get probability 0.

        Returns:
            probs (K, H, W) float32.
        """
        if image.ndim != 3 or image.shape[0] != self.in_channels:
            raise ValueError(f"expected an image ({self.in_channels}, H, W), got {image.shape}")
        probs = np.empty((self.num_classes, *image.shape[1:]), dtype=np.float32)
        for k in range(self.num_classes):
            values = image[int(self.channel[k])].astype(np.float64)
            direction, threshold = int(self.direction[k]), float(self.threshold[k])
            with np.errstate(invalid="ignore", over="ignore"):
                distance = direction * (values - threshold) / float(self.scale[k])
                # tanh form of the logistic: no overflow for large distances.
                soft = (0.5 + 0.5 * np.tanh(0.5 * distance)).astype(np.float32)
                passes = values >= threshold if direction > 0 else values <= threshold
            # Rounding near the threshold must not flip the rule: clamp each side of 0.5.
            probs[k] = np.where(passes, np.maximum(soft, 0.5), np.minimum(soft, _BELOW_HALF))
            probs[k][~np.isfinite(values)] = 0.0
        return probs

    def summary(self, class_names: Sequence[str] | None = None) -> list[ThresholdRule]:
        """The chosen rule of each class, with names where given."""
        rules = []
        for k in range(self.num_classes):
            channel = int(self.channel[k])
            rules.append(
                ThresholdRule(
                    class_name=class_names[k] if class_names is not None else f"class {k}",
                    channel_name=(
                        self.channel_names[channel]
                        if self.channel_names is not None
                        else f"channel {channel}"
                    ),
                    threshold=float(self.threshold[k]),
                    direction=">=" if self.direction[k] > 0 else "<=",
                    train_jaccard=float(self.train_jaccard[k]),
                )
            )
        return rules


def fit_index_threshold(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    ignored: Sequence[np.ndarray],
    channel_names: Sequence[str],
    settings: IndexThresholdSettings | None = None,
    *,
    class_names: Sequence[str] | None = None,
) -> IndexThresholdModel:
    """Choose each class's channel, threshold and direction for Jaccard on training pixels.

    Args:
        images: (C, H, W) float, already with indices appended (and normalized, if the model
            will be fed normalized images).
        masks: (K, H, W) bool labels; classes may overlap.
        ignored: (H, W) bool, True for pixels left out (nodata, unlabelled, ignore label).
        channel_names: names of the C channels, bands then indices.
        settings: `IndexThresholdSettings()` when omitted.
        class_names: names of the K classes, for the log.

    Raises:
        ConfigError: `settings.channels` names a channel the images do not have.
        DataError: the inputs disagree in shape, or no pixel is valid.
    """
    settings = settings or IndexThresholdSettings()
    names = tuple(channel_names)
    if images and len(names) != images[0].shape[0]:
        raise ValueError(f"{len(names)} channel names for images of {images[0].shape[0]} channels")
    candidates = _candidate_channels(names, settings.channels)
    pixels, labels = sample_pixels(
        images, masks, ignored, max_pixels=settings.max_pixels, balance=0.0, seed=settings.seed
    )
    num_classes = labels.shape[1]
    best_score = np.full(num_classes, -1.0)
    best = np.zeros((num_classes, 3))  # channel, threshold, direction
    for channel in candidates:
        scores, thresholds, directions = _best_cuts(pixels[:, channel], labels)
        better = scores > best_score
        best_score[better] = scores[better]
        best[better] = np.stack([np.full(num_classes, channel), thresholds, directions], 1)[better]
    has_truth = labels.any(axis=0)
    # A class without a training pixel is never predicted: `>= +inf` selects nothing.
    best[~has_truth] = (candidates[0], math.inf, 1)
    channel_index = best[:, 0].astype(np.int64)
    model = IndexThresholdModel(
        channel=channel_index,
        threshold=best[:, 1].copy(),
        direction=best[:, 2].astype(np.int64),
        scale=settings.softness * _spread(pixels[:, channel_index]),
        train_jaccard=np.where(has_truth, best_score, np.nan),
        in_channels=len(names),
        channel_names=names,
    )
    _log_rules(model, settings.warn_below, class_names)
    return model


def _candidate_channels(names: tuple[str, ...], wanted: tuple[str, ...] | None) -> list[int]:
    """Indices of the channels to try, checking the names in the settings."""
    if wanted is None:
        return list(range(len(names)))
    for name in wanted:
        if name not in names:
            raise ConfigError(
                f"index_threshold.channels: no channel {name!r}{did_you_mean(name, names)}. "
                "Name a band or an index the model computes."
            )
    if not wanted:
        raise ConfigError("index_threshold.channels is empty: name at least one channel")
    return [names.index(name) for name in wanted]


def _best_cuts(values: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each class's best rule on one channel: Jaccard, threshold and direction, each (K,).

    Args:
        values: (N,) finite float32 values of the channel.
        labels: (N, K) bool.
    """
    order = np.argsort(values, kind="stable")
    ordered = values[order].astype(np.float64)
    count = ordered.size
    # Cut c splits the sorted pixels into [0, c) and [c, N); only cuts between distinct values
    # can be made by a threshold. The middle of two float32 values is exact in float64 and lies
    # strictly between them, so it makes the cut for `>=` and `<=` alike.
    inner = np.flatnonzero(np.diff(ordered) > 0) + 1
    middles = ordered[inner - 1] + (ordered[inner] - ordered[inner - 1]) / 2
    # `>=` tries the cuts selecting something: all pixels (threshold -inf), then the inner cuts;
    # `<=` the inner cuts, then all pixels (+inf).
    rules = (
        (1, np.concatenate([[0], inner]), np.concatenate([[-np.inf], middles])),
        (-1, np.concatenate([inner, [count]]), np.concatenate([middles, [np.inf]])),
    )
    # positives_before[c, k]: pixels of class k among the c lowest values.
    positives_before = np.zeros((count + 1, labels.shape[1]), dtype=np.int64)
    np.cumsum(labels[order], axis=0, out=positives_before[1:])
    total = positives_before[-1]
    scores = np.full(labels.shape[1], -1.0)
    thresholds, directions = np.zeros(labels.shape[1]), np.ones(labels.shape[1])
    for direction, cuts, cut_thresholds in rules:
        before = positives_before[cuts]
        if direction > 0:
            true_positive, predicted = total - before, (count - cuts)[:, None]
        else:
            true_positive, predicted = before, cuts[:, None]
        jaccard = ClassCounts(
            true_positive=true_positive,
            false_positive=predicted - true_positive,
            false_negative=total - true_positive,
            true_negative=count - predicted - total + true_positive,
        ).jaccard()  # (cuts, K), NaN only for a class without pixels
        best = np.argmax(np.nan_to_num(jaccard, nan=-1.0), axis=0)
        best_scores = np.nan_to_num(jaccard[best, np.arange(labels.shape[1])], nan=-1.0)
        better = best_scores > scores
        scores[better] = best_scores[better]
        thresholds[better] = cut_thresholds[best[better]]
        directions[better] = direction
    return scores, thresholds, directions


def _spread(columns: np.ndarray) -> np.ndarray:
    """(K,) standard deviation of each column (N, K) over finite values, 1 where it is 0."""
    spread = np.ones(columns.shape[1])
    for k in range(columns.shape[1]):
        finite = columns[:, k][np.isfinite(columns[:, k])]
        if finite.size > 1 and float(finite.std()) > 0:
            spread[k] = float(finite.std())
    return spread


def _log_rules(
    model: IndexThresholdModel, warn_below: float, class_names: Sequence[str] | None
) -> None:
    """One line per class; a warning for classes no single channel separates."""
    for rule in model.summary(class_names):
        logger.info("index threshold %s", rule)
        if rule.train_jaccard < warn_below:
            logger.warning(
                "%s: the best single-channel rule reaches Jaccard %.3f on training pixels; "
                "no channel separates this class",
                rule.class_name,
                rule.train_jaccard,
            )
