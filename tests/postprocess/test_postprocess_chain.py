"""The whole chain: thresholds, morphology, rules, minimum area; exact strip by strip."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import shapely
from pydantic import ValidationError

from spectraseg.errors import ConfigError
from spectraseg.grid import Grid
from spectraseg.postprocess.chain import (
    PostprocessSettings,
    postprocess_masks,
    postprocess_window,
    resolve_postprocess,
)
from spectraseg.postprocess.polygons import PolygonSettings, vectorize_rows

NAMES = ("building", "water")
NO_CLEANUP = PostprocessSettings(morphology={"all": {}})
SETTINGS = PostprocessSettings.model_validate(
    {
        "morphology": {
            "all": {"min_area_px": 6},
            "building": {
                "opening_px": 1,
                "closing_px": 1,
                "smooth_px": 0.8,
                "fill_holes_below_px": 8,
                "min_area_px": 10,
            },
        },
        "rules": [
            {"wins": "water", "over": ["building"]},
            {"keep": "building", "within": ["water"], "buffer_px": 6},
        ],
    }
)


def test_strip_by_strip_post_processing_and_vectorizing_equals_the_whole(
    grid_of: Callable[..., Grid],
) -> None:
    rng = np.random.default_rng(4)
    from scipy import ndimage

    probs = ndimage.gaussian_filter(rng.random((2, 90, 70)), (0, 2.5, 2.5)).astype(np.float32)
    probs = (probs - probs.min()) / (probs.max() - probs.min())
    probs[:, 40:44, 10:20] = np.nan  # nodata
    grid = grid_of(90, 70)
    plan = resolve_postprocess(SETTINGS, NAMES, grid)
    assert plan.halo_px > 10

    def read_rows(row: int, rows: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        return probs[:, row : row + rows], None

    def clean(part: np.ndarray | None, mask: np.ndarray | None) -> np.ndarray:
        return postprocess_window(plan, probs=part, mask=mask)

    def run(strip_rows: int) -> list[tuple[int, int, bytes]]:
        objects = vectorize_rows(
            read_rows,
            height=90,
            width=70,
            num_classes=2,
            clean=clean,
            halo_px=plan.halo_px,
            settings=PolygonSettings(strip_rows=strip_rows),
            grid=grid,
        )
        return [(o.class_index, o.pixels, shapely.to_wkb(o.geometry)) for o in objects]

    whole = run(0)  # one strip (the memory budget holds the whole scene)
    assert len(whole) > 5
    assert run(7) == whole
    assert run(1) == whole


def test_the_minimum_area_runs_again_after_the_rules() -> None:
    mask = np.zeros((2, 5, 12), bool)
    mask[0, :, :] = True
    mask[1, :, 2:] = True  # water takes all but a 5 x 2 sliver of building
    settings = PostprocessSettings.model_validate(
        {
            "morphology": {"building": {"min_area_px": 12}},
            "rules": [{"wins": "water", "over": ["building"]}],
        }
    )
    result = postprocess_masks(settings, NAMES, None, mask=mask)
    assert not result[0].any()


def test_softmax_probabilities_take_the_most_probable_class() -> None:
    probs = np.array([[[0.6, 0.3]], [[0.4, 0.7]]], np.float32)
    result = postprocess_masks(
        NO_CLEANUP, NAMES, None, probs=probs, head="softmax", tuned_thresholds=[0.9, 0.9]
    )
    assert result.tolist() == [[[True, False]], [[False, True]]]


def test_tuned_thresholds_apply_to_sigmoid_probabilities() -> None:
    probs = np.array([[[0.6, 0.3]], [[0.4, 0.7]]], np.float32)
    result = postprocess_masks(NO_CLEANUP, NAMES, None, probs=probs, tuned_thresholds=[0.2, 0.8])
    assert result.tolist() == [[[True, True]], [[False, False]]]


def test_a_class_entry_replaces_the_all_entry() -> None:
    plan = resolve_postprocess(SETTINGS, NAMES, None)
    assert plan.morphology[0].min_area_px == 10 and plan.morphology[0].opening_px == 1
    assert plan.morphology[1].min_area_px == 6 and plan.morphology[1].opening_px == 0


def test_an_unknown_morphology_class_suggests_the_name() -> None:
    settings = PostprocessSettings.model_validate({"morphology": {"buildng": {"opening_px": 1}}})
    with pytest.raises(ConfigError, match=r"unknown class 'buildng' \(did you mean 'building'"):
        resolve_postprocess(settings, NAMES, None)


def test_a_bad_rule_in_the_settings_is_named() -> None:
    with pytest.raises(ValidationError, match=r"postprocess.rules\[1\]"):
        PostprocessSettings.model_validate(
            {"rules": [{"wins": "water", "over": "all"}, {"exclusive": "water"}]}
        )


def test_without_an_all_entry_specks_and_pinholes_under_nine_pixels_go() -> None:
    mask = np.zeros((2, 20, 20), bool)
    mask[0, 1:3, 1:3] = True  # a 4-pixel speck
    mask[0, 8:18, 8:18] = True  # an object with a 4-pixel hole
    mask[0, 11:13, 11:13] = False
    result = postprocess_masks(PostprocessSettings(), NAMES, None, mask=mask)
    assert not result[0, 1:3, 1:3].any()
    assert result[0, 8:18, 8:18].all()


def test_an_empty_all_entry_turns_the_default_clean_up_off() -> None:
    mask = np.zeros((2, 8, 8), bool)
    mask[0, 1:3, 1:3] = True
    result = postprocess_masks(NO_CLEANUP, NAMES, None, mask=mask)
    assert np.array_equal(result, mask)


def test_a_class_entry_is_merged_over_the_all_entry() -> None:
    settings = PostprocessSettings.model_validate(
        {"morphology": {"all": {"min_area_px": 4, "closing_px": 1}, "water": {"opening_px": 2}}}
    )
    water = settings.morphology["water"]
    assert (water.min_area_px, water.closing_px, water.opening_px) == (4, 1, 2)
    assert settings.morphology["all"].opening_px == 0


def test_a_class_entry_merges_over_the_default_all_entry() -> None:
    settings = PostprocessSettings.model_validate({"morphology": {"water": {"opening_px": 1}}})
    assert settings.morphology["water"].min_area_px == 9
    assert settings.morphology["water"].fill_holes_below_px == 9


def test_an_area_in_other_units_replaces_the_all_area() -> None:
    settings = PostprocessSettings.model_validate(
        {"morphology": {"all": {"min_area_m2": 100}, "water": {"min_area_px": 2}}}
    )
    water = settings.morphology["water"]
    assert (water.min_area_px, water.min_area_m2) == (2, 0)


def test_merged_settings_survive_a_round_trip_through_a_document() -> None:
    settings = PostprocessSettings.model_validate(
        {"morphology": {"all": {"min_area_px": 4}, "water": {"opening_px": 2}}}
    )
    again = PostprocessSettings.model_validate(settings.model_dump())
    assert again == settings
