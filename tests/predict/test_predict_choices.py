"""Window, overlap and TTA for a model and a raster: what the model card and the budget allow."""

from __future__ import annotations

import math

import pytest

from spectraseg.errors import ConfigError
from spectraseg.predict.choices import (
    ModelFacts,
    PredictRequest,
    auto_window,
    choose_settings,
    request_from_config,
)
from spectraseg.predict.settings import PredictSettings
from spectraseg.predict.tiling import TilingSettings, plan_windows

MB = 2**20
FACTS = ModelFacts(
    patch_px=128,
    size_multiple=16,
    edge_margin_px=40,
    tta_jaccard={1: 0.70, 2: 0.7195, 4: 0.7201, 8: 0.7203},
)


def choose(request: PredictRequest, facts: ModelFacts = FACTS, **kwargs):  # type: ignore[no-untyped-def]
    options = {"height": 4096, "width": 4096, "bytes_per_pixel": 460.0, "budget_bytes": 384 * MB}
    options.update(kwargs)
    return choose_settings(PredictSettings(), request, facts, **options)


@pytest.mark.parametrize("budget_mb", [1, 16, 100, 384, 4000])
@pytest.mark.parametrize("bytes_per_pixel", [50.0, 460.0, 900.0])
def test_the_auto_window_is_the_largest_valid_size_that_fits_never_below_the_patch(
    budget_mb, bytes_per_pixel
):
    budget = budget_mb * MB
    window = auto_window(
        patch_px=128,
        size_multiple=16,
        bytes_per_pixel=bytes_per_pixel,
        budget_bytes=budget,
        cover_px=10_000,
    )
    assert window % 16 == 0 and window >= 128
    if window > 128:
        assert window**2 * bytes_per_pixel <= budget
        assert (window + 16) ** 2 * bytes_per_pixel > budget


def test_the_auto_window_stops_at_one_window_over_the_whole_raster():
    window = auto_window(
        patch_px=64, size_multiple=16, bytes_per_pixel=1.0, budget_bytes=10**9, cover_px=200
    )
    assert window == 208


def test_auto_uses_the_measured_margin_as_overlap_and_crop_aligned_to_the_model():
    tiling = choose(PredictRequest()).settings.tiling
    assert tiling.window_px > FACTS.patch_px
    assert tiling.margin_px == 48 and tiling.centre_crop_px == 48  # 40 rounded up to 16
    assert tiling.overlap_px == 96 and tiling.align_px == 16
    plan = plan_windows(4096, 4096, tiling)
    assert all((start - plan.row_starts[0]) % 16 == 0 for start in plan.row_starts)
    assert plan.coverage().min() >= 1


def test_auto_tta_takes_the_fewest_passes_within_tolerance():
    assert choose(PredictRequest()).settings.tta == 2


def test_a_model_without_measurements_keeps_half_overlap_and_8_passes():
    choice = choose(PredictRequest(), ModelFacts(patch_px=128, size_multiple=16))
    assert choice.settings.tiling.overlap == 0.5 and choice.settings.tta == 8
    assert "not measured" in choice.reasons


def test_what_the_user_asks_for_wins():
    choice = choose(PredictRequest(window="patch", overlap=0.5, tta=8))
    settings = choice.settings
    assert (settings.tiling.window_px, settings.tiling.overlap, settings.tta) == (128, 0.5, 8)
    assert choose(PredictRequest(window=320)).settings.tiling.window_px == 320


def test_todays_defaults_cost_32_passes_per_pixel_and_auto_far_fewer():
    today = choose(PredictRequest(window="patch", overlap=0.5, tta=8))
    assert math.isclose(today.passes_per_pixel, 32.0, rel_tol=0.02)
    assert choose(PredictRequest()).passes_per_pixel < today.passes_per_pixel / 8
    assert "network passes per pixel" in today.describe()


def test_a_margin_too_wide_for_the_window_falls_back_to_half_overlap():
    facts = ModelFacts(patch_px=64, size_multiple=16, edge_margin_px=40)
    choice = choose(PredictRequest(window="patch"), facts)
    assert choice.settings.tiling.overlap == 0.5
    assert "does not fit" in choice.reasons


def test_per_pixel_models_get_no_tta_and_no_overlap():
    facts = ModelFacts(patch_px=128, per_pixel=True)
    settings = choose(PredictRequest(tta=8, overlap=0.5), facts).settings
    assert (settings.tta, settings.tiling.overlap) == (1, 0.0)


def test_the_batch_fits_the_budget():
    settings = choose(PredictRequest(window=256), budget_bytes=64 * MB).settings
    assert settings.batch_size is not None
    assert settings.batch_size * 256**2 * 460 <= 64 * MB


def test_a_crop_wider_than_the_margin_allows_is_a_config_error():
    base = PredictSettings(tiling=TilingSettings(centre_crop_px=6))
    with pytest.raises(ConfigError, match="--centre-crop"):
        choose_settings(
            base,
            PredictRequest(window=16, overlap=0.5),
            FACTS,
            height=64,
            width=64,
            bytes_per_pixel=1.0,
            budget_bytes=MB,
        )


def test_only_the_predict_keys_a_config_wrote_are_requests_the_rest_stay_auto():
    settings = PredictSettings(tta=2)
    assert request_from_config(settings, {"predict", "predict.tta"}) == PredictRequest(tta=2)
    untouched = request_from_config(PredictSettings(), {"train.epochs"})
    assert untouched == PredictRequest()
    assert untouched.model_dump(exclude_unset=True) == {}
    written = request_from_config(PredictSettings(), {"predict.tiling.window_px"})
    assert written.window == PredictSettings().tiling.window_px
