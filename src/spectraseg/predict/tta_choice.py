"""`--tta auto`: as many D4 passes as the validation set showed to help, and no more.

Eight passes cost eight times one. Whether they pay depends on the model: one trained with D4
augmentation may already be nearly equivariant, and then averaging its rotations changes the
masks by less than anyone could notice. So training ends by scoring the validation windows with
1, 2, 4 and 8 passes (`measure_tta_jaccard`, stored on the model card as `tta_jaccard`), and
prediction takes the fewest passes whose Jaccard is within `TTA_TOLERANCE` of the best
(`choose_tta`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

from spectraseg.data.augment import D4, tta_transforms
from spectraseg.models.head import binarize
from spectraseg.predict.tta import Model
from spectraseg.train.metrics import ClassCounts

__all__ = ["TTA_COUNTS", "TTA_TOLERANCE", "choose_tta", "measure_tta_jaccard"]

TTA_COUNTS = (1, 2, 4, 8)
# Mean Jaccard a cheaper TTA may give up against the best: a tenth of the 0.005 within which
# the issue asks prediction at a third of the cost to stay, and below what one validation
# epoch to the next moves.
TTA_TOLERANCE = 0.001
# Without a measurement, the passes prediction used before there was one.
DEFAULT_TTA = 8


def choose_tta(
    tta_jaccard: Mapping[int, float] | None, tolerance: float = TTA_TOLERANCE
) -> tuple[int, str]:
    """The fewest passes (1, 2, 4 or 8) whose validation Jaccard is within `tolerance` of the
    best, and why; 8 when nothing was measured. Never more than 8.

    Example:
        >>> choose_tta({1: 0.801, 2: 0.8105, 4: 0.8112, 8: 0.8115})
        (2, 'validation Jaccard 0.8105 with 2 passes, 0.8115 at best (8)')
    """
    scores = {
        int(count): float(value)
        for count, value in (tta_jaccard or {}).items()
        if int(count) in TTA_COUNTS and math.isfinite(float(value))
    }
    if not scores:
        return DEFAULT_TTA, "no validation Jaccard per TTA count recorded"
    best_count = max(scores, key=lambda count: (scores[count], -count))
    best = scores[best_count]
    chosen = min(count for count, value in scores.items() if value >= best - tolerance)
    return chosen, (
        f"validation Jaccard {scores[chosen]:.4f} with {chosen} passes, "
        f"{best:.4f} at best ({best_count})"
    )


def measure_tta_jaccard(
    model: Model,
    windows: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    thresholds: Sequence[float],
) -> dict[int, float]:
    """Mean validation Jaccard with 1, 2, 4 and 8 D4 passes, over all pixels of all windows.

    Each window is predicted once per D4 transform; the means over the subsets that
    `tta_transforms(n)` names are thresholded and counted, so the eight passes serve all four
    figures.

    Args:
        model: (N, C, h, w) float32 -> (N, K, h, w) probabilities; windows must be valid sizes
            for it both ways round (quarter turns swap height and width).
        windows: (image (C, H, W), mask (K, H, W), ignore (H, W)) as `ValidationSet` yields.
        thresholds: per-class thresholds of the masks (the tuned ones prediction uses).
    """
    subsets = {count: {t.name for t in tta_transforms(count)} for count in TTA_COUNTS}
    counts: dict[int, ClassCounts] = {}
    for image, mask, ignore in windows:
        batch = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
        sums: dict[int, torch.Tensor] = {}
        with torch.inference_mode():
            for transform in D4:
                probs = transform.inverse()(model(transform(batch))).float()
                for count, names in subsets.items():
                    if transform.name in names:
                        sums[count] = sums[count] + probs if count in sums else probs.clone()
        for count, total in sums.items():
            predicted = binarize((total[0] / count).cpu().numpy(), thresholds)
            counts.setdefault(count, ClassCounts.zeros(mask.shape[0])).add(predicted, mask, ignore)
    return {count: counts[count].mean_jaccard() for count in sorted(counts)}
