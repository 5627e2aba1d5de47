"""An RGB or false-colour preview of a multispectral image: which bands, and how to stretch them.

Pure functions over arrays. A percentile stretch is unchanged by any increasing affine map of a
band, so a normalized image and its raw bands give the same picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["COMPOSITES", "choose_composite", "preview_shape", "stretch"]

# Tried in order: the first composite whose bands the image has is shown.
COMPOSITES: tuple[tuple[str, tuple[str, str, str]], ...] = (
    ("true colour", ("red", "green", "blue")),
    ("false colour (NIR, red, green)", ("nir", "red", "green")),
    ("false colour (SWIR, NIR, red)", ("swir_1", "nir", "red")),
)

# Cut 2 % at each end: a few saturated roofs or clouds should not make the scene look dark.
LOW_PERCENTILE, HIGH_PERCENTILE = 2.0, 98.0


def choose_composite(band_names: Sequence[str]) -> tuple[tuple[int, int, int], str]:
    """(band positions for red, green and blue, a caption) for an image's bands.

    Named composites first; otherwise the first three bands (or the one band as grey).

    Example:
        >>> choose_composite(["blue", "green", "red", "nir"])
        ((2, 1, 0), 'true colour (red, green, blue)')
        >>> choose_composite(["b1"])
        ((0, 0, 0), 'band b1 as grey')
    """
    names = [name.lower() for name in band_names]
    for caption, wanted in COMPOSITES:
        if all(name in names for name in wanted):
            red, green, blue = (names.index(name) for name in wanted)
            return (red, green, blue), f"{caption} ({', '.join(wanted)})"
    if len(names) >= 3:
        return (0, 1, 2), f"bands {', '.join(band_names[:3])} as red, green, blue"
    return (0, 0, 0), f"band {band_names[0]} as grey" if band_names else "no bands"


def preview_shape(height: int, width: int, max_pixels: int) -> tuple[int, int]:
    """The largest (h, w) with the image's aspect ratio, at most `max_pixels`, never upscaled.

    Example:
        >>> preview_shape(20000, 10000, 500 * 250)
        (500, 250)
        >>> preview_shape(32, 32, 10_000)
        (32, 32)
    """
    if height * width <= max_pixels:
        return height, width
    scale = math.sqrt(max_pixels / (height * width))
    return max(1, int(height * scale)), max(1, int(width * scale))


def stretch(image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(3, H, W) bands → (H, W, 3) float32 in [0, 1], each band stretched between its 2nd and
    98th percentiles over valid pixels; invalid pixels are black.

    Example:
        >>> out = stretch(np.arange(300, dtype=np.float32).reshape(3, 10, 10))
        >>> float(out.min()), float(out.max())
        (0.0, 1.0)
    """
    keep = np.isfinite(image).all(axis=0)
    if valid is not None:
        keep &= valid
    shown = np.zeros((*image.shape[1:], 3), dtype=np.float32)
    if not keep.any():
        return shown
    for channel in range(3):
        band = image[channel].astype(np.float32)
        low, high = np.percentile(band[keep], (LOW_PERCENTILE, HIGH_PERCENTILE))
        span = float(high - low) or 1.0
        shown[..., channel] = np.clip((band - low) / span, 0.0, 1.0)
    shown[~keep] = 0.0
    return shown
