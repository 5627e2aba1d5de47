"""Validation canvases for the edge margin: touching windows pasted together, scattered apart."""

from __future__ import annotations

import numpy as np

from spectraseg.data.dataset import ValidationSet
from spectraseg.data.split import ValidationWindow
from spectraseg.predict.model_cost import validation_canvases


def validation(windows: list[ValidationWindow]) -> ValidationSet:
    images = tuple(
        np.full((2, w.height, w.width), i + 1, np.float32) for i, w in enumerate(windows)
    )
    return ValidationSet(
        images=images,
        masks=tuple(np.zeros((1, w.height, w.width), bool) for w in windows),
        ignored=tuple(np.zeros((w.height, w.width), bool) for w in windows),
        windows=tuple(windows),
    )


def test_a_tiled_validation_area_is_one_canvas_holding_every_window() -> None:
    windows = [ValidationWindow(0, row, col, 8, 8) for row in (0, 8) for col in (16, 24)]
    (canvas,) = validation_canvases(validation(windows))
    assert canvas.shape == (2, 16, 16)
    assert canvas[0, 0, 0] == 1 and canvas[0, 15, 15] == 4


def test_scattered_windows_of_a_large_scene_stay_apart() -> None:
    windows = [ValidationWindow(0, 0, 0, 8, 8), ValidationWindow(0, 9000, 9000, 8, 8)]
    canvases = validation_canvases(validation(windows))
    assert [c.shape for c in canvases] == [(2, 8, 8), (2, 8, 8)]


def test_windows_of_different_scenes_never_share_a_canvas() -> None:
    windows = [ValidationWindow(1, 0, 0, 8, 8), ValidationWindow(0, 0, 8, 8, 8)]
    canvases = validation_canvases(validation(windows))
    assert [float(c[0, 0, 0]) for c in canvases] == [2.0, 1.0]
