"""What a report shows of one model or evaluation, as plain data: `ReportSource` and its parts.

`collect.py` fills these from folders and `validation.py` from a training run's validation
windows; `figures.py` and `page.py` only read them. Every part but the label may be missing:
the page leaves out a section whose inputs are absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ReportSource", "SceneView", "ThresholdCurves"]

Colour = tuple[int, int, int]


@dataclass(frozen=True, eq=False)
class SceneView:
    """One scene as shown: a downsampled preview with its prediction and truth on one grid.

    Attributes:
        composite: (H, W, 3) float32 in [0, 1], the stretched preview; None when the scene's
            image was not found (the masks are then drawn on grey).
        predicted: (K, H, W) bool.
        truth: (K, H, W) bool.
        ignore: (H, W) bool, True where nothing is scored (unlabelled, nodata).
        shape: the scene's full size (rows, columns), for the caption.
    """

    name: str
    composite: np.ndarray | None
    caption: str
    predicted: np.ndarray
    truth: np.ndarray
    ignore: np.ndarray
    shape: tuple[int, int]


@dataclass(frozen=True, eq=False)
class ThresholdCurves:
    """Jaccard against threshold per class, and the threshold each class uses.

    Attributes:
        thresholds: (T,) increasing.
        jaccard: (K, T), NaN where undefined.
        chosen: (K,) the threshold in use per class.
    """

    thresholds: np.ndarray
    jaccard: np.ndarray
    chosen: tuple[float, ...]


@dataclass(frozen=True, eq=False)
class ReportSource:
    """Everything known about one model's results.

    Attributes:
        scores: a `scores.json` document (per-class scores, `pixels`, `confusion`).
        history: `history.csv` rows, values as text.
        search_figures: PNG files of the search the run came from.
        settings: the resolved config.
        provenance: versions, seed, data, timings, as label → text.
    """

    label: str
    folder: Path
    class_names: tuple[str, ...]
    class_colours: tuple[Colour, ...]
    scores: dict[str, Any] | None = None
    history: list[dict[str, str]] | None = None
    scenes: tuple[SceneView, ...] = ()
    thresholds: ThresholdCurves | None = None
    search_figures: tuple[Path, ...] = ()
    settings: dict[str, Any] | None = None
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def multiclass(self) -> bool:
        """A softmax run: one class per pixel, so a confusion matrix means something."""
        return bool(self.scores and self.scores.get("confusion"))
