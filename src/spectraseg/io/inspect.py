"""Read a stack through once, window by window, and summarize it (the `info` verb)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from spectraseg.io.rasters import open_stack

STRIP_ROWS = 512


def summarize_stack(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    sensor: str | None = None,
    resolution: float | None = None,
) -> dict[str, Any]:
    """Grid, band names and per-band min/mean/max over valid pixels; memory is one strip."""
    with open_stack(list(inputs), sensor=sensor, resolution=resolution) as stack:
        count = stack.count
        low = np.full(count, np.inf)
        high = np.full(count, -np.inf)
        total = np.zeros(count)
        valid_pixels = 0
        for window in stack.windows(STRIP_ROWS):
            image, valid = stack.read(window)
            pixels = image[:, valid]
            if pixels.size:
                low = np.minimum(low, pixels.min(axis=1))
                high = np.maximum(high, pixels.max(axis=1))
                total += pixels.sum(axis=1, dtype=np.float64)
                valid_pixels += pixels.shape[1]
        height, width = stack.shape
        mean = total / max(valid_pixels, 1)
        # No valid pixel, no statistics: None (JSON null), never a mean of 0.
        return {
            "grid": stack.grid.describe(),
            "files": [str(path) for path in stack.paths],
            "valid_fraction": valid_pixels / (height * width),
            "all_nodata": valid_pixels == 0,
            "bands": [
                {
                    "name": name,
                    "min": float(low[i]) if valid_pixels else None,
                    "mean": float(mean[i]) if valid_pixels else None,
                    "max": float(high[i]) if valid_pixels else None,
                }
                for i, name in enumerate(stack.band_names)
            ],
        }
