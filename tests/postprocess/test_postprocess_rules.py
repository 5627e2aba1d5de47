"""Each conflict rule, shown on a tiny example of what it changes; parsing and name checks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from spectraseg.errors import ConfigError
from spectraseg.grid import Grid
from spectraseg.postprocess.rules import (
    ExclusiveRule,
    KeepWithinRule,
    WinsRule,
    apply_rules,
    parse_rule,
    parse_rules,
    resolve_rules,
)

NAMES = ("building", "water", "road", "vehicle")


def stack(**planes: list[list[int]]) -> np.ndarray:
    """(4, H, W) mask from named planes; classes not given are empty."""
    shape = np.asarray(next(iter(planes.values()))).shape
    mask = np.zeros((len(NAMES), *shape), bool)
    for name, plane in planes.items():
        mask[NAMES.index(name)] = np.asarray(plane, bool)
    return mask


def run(
    rules: list[dict[str, object]],
    mask: np.ndarray,
    probs: np.ndarray | None = None,
    grid: Grid | None = None,
) -> np.ndarray:
    return apply_rules(mask, resolve_rules(parse_rules(rules), NAMES, grid), probs)


def test_water_wins_over_building_removes_building_only_where_water_is() -> None:
    mask = stack(building=[[1, 1, 1]], water=[[0, 1, 1]])
    result = run([{"wins": "water", "over": ["building"]}], mask)
    assert result[0].tolist() == [[True, False, False]]
    assert np.array_equal(result[1], mask[1])  # the winner is untouched


def test_building_wins_over_all_clears_every_other_class_under_buildings() -> None:
    mask = stack(building=[[1, 0]], water=[[1, 1]], road=[[1, 0]], vehicle=[[1, 1]])
    result = run([{"wins": "building", "over": "all"}], mask)
    assert result[:, 0, 0].tolist() == [True, False, False, False]
    assert result[:, 0, 1].tolist() == [False, True, False, True]


def test_vehicles_survive_only_within_the_buffer_around_roads() -> None:
    road = [[1, 0, 0, 0, 0, 0]]
    vehicle = [[0, 1, 1, 1, 1, 1]]
    mask = stack(road=road, vehicle=vehicle)
    kept = run([{"keep": "vehicle", "within": ["road"], "buffer_px": 2}], mask)
    assert kept[3].tolist() == [[False, True, True, False, False, False]]
    assert np.array_equal(kept[2], mask[2])


def test_a_buffer_in_metres_uses_the_grid(grid_of: Callable[..., Grid]) -> None:
    mask = stack(road=[[1, 0, 0, 0, 0, 0]], vehicle=[[0, 1, 1, 1, 1, 1]])
    rules = [{"keep": "vehicle", "within": ["road"], "buffer_m": 4}]
    kept = run(rules, mask, grid=grid_of(1, 6, pixel_m=2.0))  # 4 m = 2 pixels
    assert kept[3].tolist() == [[False, True, True, False, False, False]]


def test_a_buffer_in_metres_needs_a_crs() -> None:
    from affine import Affine

    pixel_grid = Grid(None, Affine.identity(), 6, 1)
    with pytest.raises(ConfigError, match="buffer_m is in metres"):
        resolve_rules(
            parse_rules([{"keep": "vehicle", "within": "road", "buffer_m": 4}]), NAMES, pixel_grid
        )


def test_exclusive_classes_keep_the_most_probable() -> None:
    mask = stack(building=[[1, 1, 0]], water=[[1, 1, 1]])
    probs = np.zeros((4, 1, 3), np.float32)
    probs[0] = [[0.9, 0.6, 0.0]]
    probs[1] = [[0.7, 0.8, 0.9]]
    result = run([{"exclusive": ["building", "water"]}], mask, probs)
    assert result[0].tolist() == [[True, False, False]]
    assert result[1].tolist() == [[False, True, True]]


def test_exclusive_without_probabilities_keeps_the_class_listed_first() -> None:
    mask = stack(building=[[1, 0]], water=[[1, 1]])
    result = run([{"exclusive": ["water", "building"]}], mask)
    assert result[0].tolist() == [[False, False]] and result[1].tolist() == [[True, True]]


def test_rules_apply_in_order() -> None:
    mask = stack(building=[[1]], water=[[1]])
    first = run(
        [{"wins": "water", "over": ["building"]}, {"wins": "building", "over": ["water"]}], mask
    )
    assert first[:2, 0, 0].tolist() == [False, True]


def test_the_input_mask_is_untouched() -> None:
    mask = stack(building=[[1]], water=[[1]])
    copy = mask.copy()
    run([{"wins": "water", "over": "all"}], mask)
    assert np.array_equal(mask, copy)


def test_rules_parse_into_their_kinds() -> None:
    assert isinstance(parse_rule({"wins": "water", "over": "building"}), WinsRule)
    assert isinstance(
        parse_rule({"keep": "vehicle", "within": "road", "buffer_m": 5}), KeepWithinRule
    )
    assert isinstance(parse_rule({"exclusive": ["a", "b"]}), ExclusiveRule)
    assert parse_rules(None) == ()


def test_an_unknown_rule_word_suggests_the_vocabulary() -> None:
    with pytest.raises(
        ConfigError,
        match=r"must start with one of wins, keep, exclusive "
        r"\(did you mean 'wins'\?\)",
    ):
        parse_rule({"win": "water", "over": ["building"]})


def test_a_rule_with_a_bad_field_names_it() -> None:
    with pytest.raises(ConfigError, match=r"rules: rule .*exclusive.*at least two classes"):
        parse_rule({"exclusive": ["water"]})
    with pytest.raises(ConfigError, match="buffer_m or buffer_px, not both"):
        parse_rule({"keep": "vehicle", "within": ["road"], "buffer_m": 1, "buffer_px": 1})


def test_an_unknown_class_in_a_rule_suggests_the_name() -> None:
    with pytest.raises(ConfigError, match=r"rules\[0\]: unknown class 'watr' \(did you mean"):
        resolve_rules(parse_rules([{"wins": "watr", "over": "all"}]), NAMES)


def test_rules_must_be_a_list() -> None:
    with pytest.raises(ConfigError, match="expected a list of rules"):
        parse_rules({"wins": "water", "over": "all"})
