"""Prediction settings for one model and one raster: window, overlap and TTA, and their cost.

What a pixel costs is the number of times the network sees it: TTA passes times the windows
that hold it. Today's defaults (window = training patch, 50% overlap, 8 passes) make that 32.
A fully convolutional network needs neither: the window can be as large as memory allows
(`memory.py`), neighbours need overlap only by twice the model's measured edge margin
(`edge_margin.py`), and TTA only the passes validation showed to help (`tta_choice.py`).
`choose_settings` turns what the user asked (`PredictRequest`, "auto" by default) and what the
model card says (`ModelFacts`) into concrete `PredictSettings` for a raster, with one line that
says what a pixel will cost and why.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError

from spectraseg.errors import ConfigError
from spectraseg.predict.edge_margin import round_up
from spectraseg.predict.settings import CPU_BATCH_PIXELS, GPU_FIRST_BATCH, PredictSettings
from spectraseg.predict.tiling import TilingSettings, plan_windows
from spectraseg.predict.tta_choice import choose_tta
from spectraseg.settings import Settings

__all__ = [
    "Choice",
    "ModelFacts",
    "PredictRequest",
    "auto_window",
    "choose_settings",
    "request_from_config",
]

# The overlap of models whose edge margin was never measured: what prediction always used.
FALLBACK_OVERLAP = 0.5


@dataclass(frozen=True)
class ModelFacts:
    """What a trained model's card says about predicting it cheaply."""

    patch_px: int
    """The training patch: the smallest window auto chooses, and `--window patch`."""
    size_multiple: int = 1
    """Valid input sizes are multiples of this (2**depth for a U-Net)."""
    edge_margin_px: int | None = None
    """Measured edge effect; None: not measured, so windows overlap by half."""
    tta_jaccard: Mapping[int, float] | None = None
    """Validation Jaccard per number of D4 passes; None: not measured, so 8 passes."""
    per_pixel: bool = False
    """Random forests and index thresholds: no TTA, no overlap."""
    centre_crop_px: int = 0
    """Valid-region training's border: each window drops it unless the settings say otherwise."""


class PredictRequest(Settings):
    """What the user asked for: "auto" lets the model card and the raster decide."""

    window: int | Literal["auto", "patch"] = "auto"
    """auto: the largest valid window under the memory budget, never below the patch;
    patch: the training patch; or a side in pixels."""
    overlap: float | None = Field(default=None, ge=0.0, lt=1.0)
    """Share of a window its neighbour sees too; None: twice the measured edge margin (50%
    for models without one)."""
    tta: Literal["auto", 1, 2, 4, 8] = "auto"
    """auto: the fewest passes within tolerance of the best on validation (8 if unmeasured)."""


# Config keys that are requests to `choose_settings` when written, and its fields.
_REQUEST_KEYS = {
    "predict.tta": "tta",
    "predict.tiling.window_px": "window",
    "predict.tiling.overlap": "overlap",
}


def request_from_config(settings: PredictSettings, given: Collection[str]) -> PredictRequest:
    """What a config's `predict:` section asks of window, overlap and TTA.

    Only the keys the user wrote (`given`, dotted, e.g. "predict.tta") are requests; what the
    section leaves out stays "auto", for the model card and the raster to decide, so a config
    without a `predict:` section predicts exactly as `predict_raster(load_model(...))` does.
    """
    values: dict[str, Any] = {
        "tta": settings.tta,
        "window": settings.tiling.window_px,
        "overlap": settings.tiling.overlap,
    }
    asked = {field: values[field] for key, field in _REQUEST_KEYS.items() if key in given}
    return PredictRequest.model_validate(asked)


@dataclass(frozen=True)
class Choice:
    """Settings for one raster, what they cost and why."""

    settings: PredictSettings
    passes_per_pixel: float
    """Network evaluations per raster pixel: TTA times window pixels over raster pixels."""
    reasons: str

    def describe(self) -> str:
        return f"{self.passes_per_pixel:.2f} network passes per pixel: {self.reasons}"


def auto_window(
    *,
    patch_px: int,
    size_multiple: int,
    bytes_per_pixel: float,
    budget_bytes: int,
    cover_px: int,
) -> int:
    """The largest multiple of `size_multiple` whose forward pass fits `budget_bytes`, at least
    `patch_px` and at most `cover_px` rounded up (one window over the whole raster is enough).

    Example:
        >>> auto_window(patch_px=128, size_multiple=16, bytes_per_pixel=460.0,
        ...             budget_bytes=384 * 2**20, cover_px=4096)
        928
        >>> auto_window(patch_px=128, size_multiple=16, bytes_per_pixel=460.0,
        ...             budget_bytes=384 * 2**20, cover_px=300)
        304
    """
    side = math.isqrt(int(budget_bytes / max(bytes_per_pixel, 1e-9)))
    largest = side // size_multiple * size_multiple
    return max(patch_px, min(largest, round_up(cover_px, size_multiple)))


def _batch_size(
    base: PredictSettings, window_px: int, bytes_per_pixel: float, budget_bytes: int, gpu: bool
) -> int | None:
    if base.batch_size is not None:
        return base.batch_size
    fits = max(1, int(budget_bytes // max(window_px * window_px * bytes_per_pixel, 1.0)))
    usual = GPU_FIRST_BATCH if gpu else max(1, CPU_BATCH_PIXELS // (window_px * window_px))
    return min(usual, fits)


def _tiling(window_px: int, overlap: float, centre_crop_px: int) -> TilingSettings:
    try:
        return TilingSettings(window_px=window_px, overlap=overlap, centre_crop_px=centre_crop_px)
    except ValidationError as error:
        message = str(error.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"--centre-crop (predict.tiling.centre_crop_px): {message}.") from None


def choose_settings(
    base: PredictSettings,
    request: PredictRequest,
    facts: ModelFacts,
    *,
    height: int,
    width: int,
    bytes_per_pixel: float,
    budget_bytes: int,
    gpu: bool = False,
) -> Choice:
    """Concrete settings for a `height` x `width` raster; `base` gives everything else
    (blending, dtype, batch, compile ...).

    Window: see `PredictRequest.window`. Overlap: `request.overlap` if given; else twice the
    measured edge margin, with that margin dropped from each window (`centre_crop_px`), so every
    blended pixel is one the model predicts as it would inside the whole image; else 50%.
    Window starts are aligned to the model's size multiple. TTA: `request.tta` or `choose_tta`.
    """
    multiple = max(1, facts.size_multiple)
    if facts.per_pixel:
        window = facts.patch_px if request.window in ("auto", "patch") else int(request.window)
        tiling = TilingSettings(window_px=window, overlap=0.0)
        settings = base.model_copy(
            update={"tiling": tiling, "tta": 1, "window_function": "flat", "compile": False}
        )
        plan = plan_windows(height, width, tiling)
        return Choice(
            settings, plan.pixel_passes / (height * width), "per-pixel model: no TTA, no overlap"
        )

    # A model trained on patch centres predicts its windows' centres: crop as in training.
    crop = base.tiling.centre_crop_px or facts.centre_crop_px
    margin: int | None = None
    if request.overlap is None and facts.edge_margin_px is not None:
        margin = round_up(max(facts.edge_margin_px, crop), multiple)
    if request.window == "auto":
        window = auto_window(
            patch_px=facts.patch_px,
            size_multiple=multiple,
            bytes_per_pixel=bytes_per_pixel,
            budget_bytes=budget_bytes,
            cover_px=max(height, width) + 2 * (margin or 0),
        )
        window_reason = (
            f"window {window} px (auto: {bytes_per_pixel:.0f} B per window pixel, "
            f"{budget_bytes / 2**20:.0f} MB budget, training patch {facts.patch_px} px)"
        )
    elif request.window == "patch":
        window, window_reason = facts.patch_px, f"window {facts.patch_px} px (training patch)"
    else:
        window, window_reason = int(request.window), f"window {request.window} px (asked)"

    if request.overlap is not None:
        tiling = _tiling(window, request.overlap, crop)
        margin_reason = f"overlap {request.overlap:.0%} (asked)"
    elif margin is not None and window - 2 * margin >= multiple:
        tiling = _tiling(window, 2 * margin / window, margin)
        margin_reason = f"margin {margin} px (measured edge effect), overlap {2 * margin} px"
    else:
        tiling = _tiling(window, FALLBACK_OVERLAP, crop)
        margin_reason = (
            "overlap 50% (edge margin not measured)"
            if margin is None
            else f"overlap 50% (the measured margin of {margin} px does not fit this window)"
        )
    if window % multiple == 0 and tiling.stride_px % multiple == 0:
        tiling = tiling.model_copy(update={"align_px": multiple})

    if request.tta == "auto":
        tta, tta_why = choose_tta(facts.tta_jaccard)
        tta_reason = f"TTA {tta} (auto: {tta_why})"
    else:
        tta, tta_reason = int(request.tta), f"TTA {request.tta} (asked)"

    settings = base.model_copy(
        update={
            "tiling": tiling,
            "tta": tta,
            "batch_size": _batch_size(base, window, bytes_per_pixel, budget_bytes, gpu),
        }
    )
    plan = plan_windows(height, width, tiling)
    passes = tta * plan.pixel_passes / (height * width)
    return Choice(
        settings,
        passes,
        f"{window_reason}; {margin_reason}; {tta_reason}; {plan.num_windows} windows",
    )
