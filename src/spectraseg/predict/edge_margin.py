"""A model's edge margin: how far from a window's border its predictions are still off.

A convolutional network near a window's border sees zero padding where the whole image would
show it more pixels, so its predictions there differ from what it predicts for the same pixels
inside a larger image. How far that reaches depends on the trained weights, not only on the
architecture: the receptive field of a depth-4 U-Net spans hundreds of pixels, but most of it
carries almost no weight. So it is measured, once, at the end of training: validation images
are predicted whole and in windows, and the margin is the distance from a window border
beyond which no pixel differs by more than a tolerance in probability. Prediction then overlaps
windows by twice the margin and drops the margin from each window (`choices.py`), instead of a
fixed 50% overlap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from spectraseg.predict.tta import Model

__all__ = ["EDGE_TOLERANCE", "measure_edge_margin", "round_up"]

# The most two predictions of one raster with different windows may differ by, in probability.
# Each is within half of it of the whole-image prediction, which is what the margin measures.
EDGE_TOLERANCE = 1e-3
# Pixels of validation images the measurement looks at, at most: enough to see the margin
# everywhere it shows, while the measurement stays a small part of a training run.
MAX_PIXELS = 4_000_000


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of `multiple` that is at least `value`.

    Example:
        >>> round_up(17, 16), round_up(32, 16), round_up(0, 16)
        (32, 32, 0)
    """
    return -(-value // multiple) * multiple


def _starts(length: int, window_px: int, step: int, multiple: int) -> list[int]:
    """Window starts along an axis: every `step` pixels and one flush with the (aligned) end."""
    last = (length - window_px) // multiple * multiple
    starts = list(range(0, last + 1, step))
    if starts[-1] != last:
        starts.append(last)
    return starts


def _window_distances(top: int, left: int, window_px: int, height: int, width: int) -> np.ndarray:
    """(window_px, window_px) distance of each window pixel to the nearest window border that
    lies inside the image (borders on the image's own edge are the whole image's too)."""
    index = np.arange(window_px)
    far = np.full(window_px, np.iinfo(np.int64).max // 2)
    rows = np.minimum(
        index if top > 0 else far, window_px - 1 - index if top + window_px < height else far
    )
    cols = np.minimum(
        index if left > 0 else far, window_px - 1 - index if left + window_px < width else far
    )
    distances: np.ndarray = np.minimum(rows[:, None], cols[None, :])
    return distances


def _predict(model: Model, images: list[np.ndarray]) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(np.stack(images))).float().cpu().numpy()


def _batched(items: Iterable[tuple[int, int]], size: int) -> Iterator[list[tuple[int, int]]]:
    batch: list[tuple[int, int]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def measure_edge_margin(
    model: Model,
    images: Iterable[np.ndarray],
    *,
    window_px: int,
    size_multiple: int = 1,
    tolerance: float = EDGE_TOLERANCE / 2,
    max_pixels: int = MAX_PIXELS,
    batch_size: int = 4,
) -> int | None:
    """The distance from a window border within which `model` differs from its whole-image
    prediction by more than `tolerance`, rounded up to `size_multiple`; None if no image fits
    or the differences reach half a window (a margin too wide to measure this way).

    Each image (cropped to multiples of `size_multiple`) is predicted whole, then in windows of
    `window_px` (or half the image's shorter side, when that is smaller) laid every half window
    at positions aligned to `size_multiple`, so each window meets the model's pooling grid as
    the whole image does. For every pixel where a window's prediction differs from the whole
    image's by more than `tolerance` in any class, its distance to that window's nearest
    interior border counts; the margin is one more than the largest such distance. A model
    that sees each pixel alone (a 1x1 convolution) measures 0.

    Args:
        model: (N, C, h, w) float32 -> (N, K, h, w) probabilities, on the inputs `images` hold
            (normalized, for a network straight from training).
        images: (C, H, W) float32 images, e.g. the validation windows.
        max_pixels: stop after images of this many pixels in all.
    """
    margin: int | None = None
    seen = 0
    for image in images:
        if seen >= max_pixels:
            break
        height = image.shape[1] // size_multiple * size_multiple
        width = image.shape[2] // size_multiple * size_multiple
        window = min(window_px, min(height, width) // 2 // size_multiple * size_multiple)
        if window < max(size_multiple, 2):
            continue
        image = np.ascontiguousarray(image[:, :height, :width], dtype=np.float32)
        seen += height * width
        whole = _predict(model, [image])[0]
        step = max(size_multiple, window // 2 // size_multiple * size_multiple)
        positions = [
            (top, left)
            for top in _starts(height, window, step, size_multiple)
            for left in _starts(width, window, step, size_multiple)
        ]
        margin = margin or 0
        for batch in _batched(positions, batch_size):
            crops = [image[:, t : t + window, s : s + window] for t, s in batch]
            for (top, left), probs in zip(batch, _predict(model, crops), strict=True):
                reference = whole[:, top : top + window, left : left + window]
                differs = (np.abs(probs - reference) > tolerance).any(axis=0)
                if differs.any():
                    distances = _window_distances(top, left, window, height, width)
                    margin = max(margin, int(distances[differs].max()) + 1)
        if margin >= window // 2:
            # Differences reach the middle of the windows: the margin is wider than these
            # windows can show, so it stays unmeasured (and prediction keeps 50% overlap).
            return None
    return None if margin is None else round_up(margin, size_multiple)
