"""Draw docs/figures/blending_windows.png: the blending windows of `spectraseg predict`.

    python docs/figures/make_blending_figure.py

Left: the three 1-D windows over a 256 px window (each scaled to peak 1). Middle: the 2-D
squared-spline weight. Right: how overlapping windows (50% overlap) share the weight along one
axis of a raster padded by a quarter window: each window's share of a pixel's total weight.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from spectraseg.predict.blending import window_1d, window_2d
from spectraseg.predict.tiling import TilingSettings, plan_axis

OUT = Path(__file__).with_name("blending_windows.png")
SIZE = 256


def main() -> None:
    figure, (lines, image, shares) = plt.subplots(1, 3, figsize=(11, 3.2), dpi=90)
    for name in ("spline", "hann", "flat"):
        window = window_1d(name, SIZE)
        lines.plot(window / window.max(), label=name)
    lines.set(title="1-D windows", xlabel="pixel in window", ylabel="weight / peak")
    lines.legend(frameon=False)

    shown = image.imshow(window_2d("spline", SIZE), cmap="viridis")
    image.set(title="2-D spline weight", xticks=[0, 128, 255], yticks=[0, 128, 255])
    figure.colorbar(shown, ax=image, fraction=0.046)

    tiling = TilingSettings(window_px=SIZE, overlap=0.5)
    length = 640
    starts = plan_axis(length, SIZE, tiling.margin_px, tiling.stride_px)
    positions = np.arange(-tiling.margin_px, length + tiling.margin_px)
    weights = []
    for start in starts:
        weight = np.zeros(positions.size)
        inside = (positions >= start) & (positions < start + SIZE)
        weight[inside] = window_1d("spline", SIZE)
        weights.append(weight)
    total = np.sum(weights, axis=0)
    for weight in weights:
        shares.plot(positions, weight / total)
    shares.axvspan(positions[0], 0, color="0.9")
    shares.axvspan(length, positions[-1], color="0.9")
    shares.set(title="share of each window (spline)", xlabel="raster pixel (grey: padding)")
    figure.tight_layout()
    figure.savefig(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
