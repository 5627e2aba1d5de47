"""The report's figures as PNG bytes: overlays and error maps drawn pixel for pixel, curves and
matrices with matplotlib's Agg canvas (no display, no global pyplot state).

Overlays and error maps are arrays written straight to PNG, one image pixel per preview pixel,
so they stay sharp and cost no plotting time; the legend is HTML beside them.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from spectraseg.report.sources import Colour, SceneView, ThresholdCurves

__all__ = [
    "ERROR_COLOURS",
    "confusion_png",
    "curves_png",
    "error_map",
    "overlay",
    "png_bytes",
    "thresholds_png",
]

# Where the masks are drawn when the scene's image is not at hand.
GREY = 0.35
OVERLAY_ALPHA = 0.55
# Colour-blind-safe pair for the two kinds of error, orange where both meet (a wrong class).
ERROR_COLOURS: dict[str, Colour] = {
    "false positive": (213, 94, 0),
    "false negative": (0, 114, 178),
    "wrong class": (240, 228, 66),
    "correct": (255, 255, 255),
}


def _base(view: SceneView) -> np.ndarray:
    if view.composite is not None:
        return view.composite.copy()
    return np.full((*view.ignore.shape, 3), GREY, dtype=np.float32)


def overlay(view: SceneView, mask: np.ndarray, colours: Sequence[Colour]) -> np.ndarray:
    """(H, W, 3) float in [0, 1]: the preview with each class of the (K, H, W) mask painted
    in its colour, half transparent (later classes on top where classes overlap).

    Example:
        >>> view = SceneView("s", None, "", np.ones((1, 1, 1), bool), np.ones((1, 1, 1), bool),
        ...                  np.zeros((1, 1), bool), (1, 1))
        >>> overlay(view, view.predicted, [(255, 0, 0)])[0, 0].round(2).tolist()
        [0.72, 0.16, 0.16]
    """
    image = _base(view)
    for k, colour in enumerate(colours):
        where = mask[k]
        if where.any():
            paint = np.asarray(colour, dtype=np.float32) / 255.0
            image[where] = (1 - OVERLAY_ALPHA) * image[where] + OVERLAY_ALPHA * paint
    return image


def error_map(view: SceneView) -> np.ndarray:
    """(H, W, 3) float in [0, 1]: false positives, false negatives and wrong classes in
    `ERROR_COLOURS` over a dimmed grey preview; correct class pixels are brightened."""
    base = _base(view).mean(axis=2, keepdims=True) * 0.5
    image = np.repeat(base, 3, axis=2)
    scored = ~view.ignore
    false_positive = (view.predicted & ~view.truth).any(axis=0) & scored
    false_negative = (view.truth & ~view.predicted).any(axis=0) & scored
    correct = (view.predicted & view.truth).any(axis=0) & scored
    kinds = (
        ("correct", correct & ~false_positive & ~false_negative),
        ("false positive", false_positive & ~false_negative),
        ("false negative", false_negative & ~false_positive),
        ("wrong class", false_positive & false_negative),
    )
    for kind, where in kinds:
        paint = np.asarray(ERROR_COLOURS[kind], dtype=np.float32) / 255.0
        alpha = 0.5 if kind == "correct" else 1.0
        image[where] = (1 - alpha) * image[where] + alpha * paint
    return image


def png_bytes(image: np.ndarray) -> bytes:
    """An (H, W, 3) float image in [0, 1] as PNG bytes."""
    from matplotlib.image import imsave

    buffer = io.BytesIO()
    imsave(buffer, np.clip(image, 0.0, 1.0), format="png")
    return buffer.getvalue()


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _saved(figure: Any) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _colour(colour: Colour) -> tuple[float, float, float]:
    return (colour[0] / 255.0, colour[1] / 255.0, colour[2] / 255.0)


def _column(rows: Sequence[dict[str, str]], key: str) -> list[float]:
    values = []
    for row in rows:
        try:
            values.append(float(row.get(key) or "nan"))
        except ValueError:
            values.append(math.nan)
    return values


def _has(values: Sequence[float]) -> bool:
    return any(math.isfinite(v) for v in values)


def curves_png(
    history: Sequence[dict[str, str]], class_names: Sequence[str], colours: Sequence[Colour]
) -> bytes:
    """Training curves from history.csv rows: loss, mean Jaccard, per-class Jaccard and the
    learning rate, against the epoch (panels without data say so)."""
    epochs = _column(history, "epoch")
    figure = _figure(12, 3.4)
    loss, mean, per_class, rate = (figure.add_subplot(1, 4, i) for i in range(1, 5))
    for key, label in (("train_loss", "training"), ("val_loss", "validation")):
        values = _column(history, key)
        if _has(values):
            loss.plot(epochs, values, marker=".", label=label)
    loss.set(title="Loss", xlabel="epoch")
    for key, label in (("val_jaccard", "at 0.5"), ("val_jaccard_tuned", "tuned thresholds")):
        values = _column(history, key)
        if _has(values):
            mean.plot(epochs, values, marker=".", label=label)
    mean.set(title="Validation mean Jaccard", xlabel="epoch", ylim=(0, 1))
    for name, colour in zip(class_names, colours, strict=True):
        values = _column(history, f"jaccard_{name}")
        if _has(values):
            per_class.plot(epochs, values, marker=".", label=name, color=_colour(colour))
    per_class.set(title="Validation Jaccard per class", xlabel="epoch", ylim=(0, 1))
    rates = _column(history, "learning_rate")
    if _has(rates):
        rate.plot(epochs, rates, marker=".", color="black")
        if all(v > 0 for v in rates if math.isfinite(v)):
            rate.set_yscale("log")
    rate.set(title="Learning rate", xlabel="epoch")
    for axes in (loss, mean, per_class, rate):
        if axes.has_data():
            if axes.get_legend_handles_labels()[0]:
                axes.legend(fontsize="small")
        else:
            axes.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=axes.transAxes)
    return _saved(figure)


def confusion_png(matrix: np.ndarray, labels: Sequence[str]) -> bytes:
    """A confusion matrix (rows truth, columns prediction) as shares of each truth row, with
    the pixel counts written in the cells."""
    counts = np.asarray(matrix, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    size = max(3.5, 0.7 * len(labels) + 1.5)
    figure = _figure(size + 1, size)
    axes = figure.add_subplot(1, 1, 1)
    shown = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(shown, ax=axes, label="share of the truth row")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set(xlabel="prediction", ylabel="truth")
    for row in range(len(labels)):
        for column in range(len(labels)):
            colour = "white" if shares[row, column] > 0.5 else "black"
            text = f"{int(counts[row, column]):,}"
            axes.text(column, row, text, ha="center", va="center", fontsize=7, color=colour)
    return _saved(figure)


def thresholds_png(
    curves: ThresholdCurves, class_names: Sequence[str], colours: Sequence[Colour]
) -> bytes:
    """Jaccard against threshold per class, with each class's chosen threshold marked."""
    figure = _figure(6, 3.6)
    axes = figure.add_subplot(1, 1, 1)
    for k, (name, colour) in enumerate(zip(class_names, colours, strict=True)):
        values = curves.jaccard[k]
        if not np.isfinite(values).any():
            continue
        line = _colour(colour)
        axes.plot(curves.thresholds, values, color=line, label=name)
        chosen = curves.chosen[k]
        at = float(np.interp(chosen, curves.thresholds, np.nan_to_num(values)))
        axes.plot([chosen], [at], marker="o", markersize=7, color=line, markeredgecolor="black")
    axes.set(xlabel="threshold", ylabel="Jaccard", xlim=(0, 1), ylim=(0, 1))
    axes.set_title("Jaccard against threshold (dots: the thresholds in use)")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small", ncol=2)
    return _saved(figure)
