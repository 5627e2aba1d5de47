"""Thresholds: auto from the tuned values, files that override them, 0 gives all, 1 nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spectraseg.errors import ConfigError
from spectraseg.io.prediction_raster import thresholds_from_tag
from spectraseg.models.head import apply_thresholds
from spectraseg.postprocess.thresholds import (
    load_thresholds,
    resolve_thresholds,
)

NAMES = ("building", "water")


def test_threshold_zero_selects_every_valid_pixel_and_one_selects_none() -> None:
    probs = np.random.default_rng(0).random((2, 8, 8)).astype(np.float32)
    probs[:, 0, 0] = 1.0
    probs[:, 1, 1] = 0.0
    probs[:, 2, 2] = np.nan
    mask = apply_thresholds(probs, [0.0, 1.0])
    assert mask[0].sum() == 63 and not mask[0, 2, 2]
    assert not mask[1].any()


def test_a_pixel_at_the_threshold_is_selected() -> None:
    probs = np.array([[[0.4, 0.5, 0.6]]], dtype=np.float32)
    assert apply_thresholds(probs, [0.5]).tolist() == [[[False, True, True]]]


def test_auto_uses_the_tuned_thresholds_else_one_half() -> None:
    assert resolve_thresholds("auto", NAMES, tuned=[0.3, 0.7]).tolist() == [0.3, 0.7]
    assert resolve_thresholds(None, NAMES).tolist() == [0.5, 0.5]


def test_a_file_overrides_only_the_classes_it_names(tmp_path: Path) -> None:
    path = tmp_path / "thresholds.yaml"
    path.write_text("water: 0.25\n")
    assert resolve_thresholds(path, NAMES, tuned=[0.3, 0.7]).tolist() == [0.3, 0.25]


def test_json_files_and_a_thresholds_key_work(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"thresholds": {"building": 0.6, "water": 0.1}}')
    assert load_thresholds(path, NAMES) == {"building": 0.6, "water": 0.1}


def test_unknown_class_in_a_thresholds_file_suggests_the_name(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("buildings: 0.4\n")
    with pytest.raises(ConfigError, match=r"t.yaml: unknown class 'buildings' \(did you mean"):
        load_thresholds(path, NAMES)


@pytest.mark.parametrize("value", ["1.5", "-0.1", "high"])
def test_thresholds_outside_zero_to_one_are_refused(tmp_path: Path, value: str) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(f"water: {value}\n")
    with pytest.raises(ConfigError, match="water"):
        load_thresholds(path, NAMES)


def test_a_missing_thresholds_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such thresholds file"):
        resolve_thresholds(tmp_path / "nope.yaml", NAMES)


def test_the_raster_tag_must_hold_one_threshold_per_class() -> None:
    assert thresholds_from_tag("[0.2, 0.4]", 2, where="x.tif") == [0.2, 0.4]
    assert thresholds_from_tag(None, 2, where="x.tif") is None
    with pytest.raises(ConfigError, match=r"x\.tif: tag SPECTRASEG_THRESHOLDS"):
        thresholds_from_tag("[0.2]", 2, where="x.tif")
