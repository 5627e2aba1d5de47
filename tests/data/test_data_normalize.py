"""Band statistics streamed over scenes, saved as JSON, applied the same way everywhere."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spectraseg.data.normalize import (
    BandStats,
    BandStatsAccumulator,
    compute_band_stats,
    normalize,
)
from spectraseg.errors import BandError, ConfigError

NAMES = ("red", "nir")


def scenes(rng: np.random.Generator, count: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    """Scenes with different ranges (so the histogram must widen) and some invalid pixels."""
    out = []
    for i in range(count):
        image = np.stack(
            [
                rng.normal(0.1 * (i + 1), 0.02, (100, 100)),
                rng.uniform(-1 - i, 3 * i + 1, (100, 100)),
            ]
        ).astype(np.float32)
        valid = rng.random((100, 100)) > 0.1
        image[:, ~valid] = 1e6  # nodata values that must not count
        out.append((image, valid))
    return out


def test_streamed_statistics_equal_those_of_all_valid_pixels_at_once():
    data = scenes(np.random.default_rng(0))
    stats = compute_band_stats(data, NAMES)
    pooled = np.concatenate([image[:, valid] for image, valid in data], axis=1).astype(np.float64)
    assert stats.band_names == NAMES
    assert stats.mean == pytest.approx(pooled.mean(axis=1), rel=1e-9)
    assert stats.std == pytest.approx(pooled.std(axis=1), rel=1e-9)
    for band in range(2):
        spread = pooled[band].max() - pooled[band].min()
        assert stats.low[band] == pytest.approx(np.percentile(pooled[band], 2), abs=spread / 1000)
        assert stats.high[band] == pytest.approx(np.percentile(pooled[band], 98), abs=spread / 1000)


def test_statistics_round_trip_through_json():
    stats = compute_band_stats(scenes(np.random.default_rng(1)), NAMES)
    document = json.loads(json.dumps(stats.to_dict()))
    assert document["band_names"] == list(NAMES)
    assert BandStats.from_dict(document) == stats


def test_standard_normalization_gives_zero_mean_unit_std():
    data = scenes(np.random.default_rng(2), count=1)
    stats = compute_band_stats(data, NAMES)
    image, valid = data[0]
    out = normalize(image, stats, band_names=NAMES, valid=valid)
    assert out[:, valid].mean(axis=1) == pytest.approx([0, 0], abs=1e-4)
    assert out[:, valid].std(axis=1) == pytest.approx([1, 1], rel=1e-4)
    assert (out[:, ~valid] == 0).all()


def test_percentile_normalization_maps_the_percentiles_to_0_and_1():
    data = scenes(np.random.default_rng(3), count=1)
    stats = compute_band_stats(data, NAMES, percentiles=(5, 95))
    image, valid = data[0]
    out = normalize(image, stats, "percentile", valid=valid)
    assert out.min() == 0 and out.max() == 1
    share_high = (out[:, valid] == 1).mean(axis=1)
    assert share_high == pytest.approx([0.05, 0.05], abs=0.01)


def test_training_and_prediction_normalize_identically():
    data = scenes(np.random.default_rng(4))
    stats = compute_band_stats(data, NAMES)
    image, _ = data[1]
    window = image[:, 5:15, 10:20]
    whole = normalize(image, stats)
    assert np.array_equal(normalize(window, stats), whole[:, 5:15, 10:20])


def test_band_names_that_differ_from_the_statistics_are_refused():
    stats = compute_band_stats(scenes(np.random.default_rng(5), 1), NAMES)
    image = np.zeros((2, 2, 2), np.float32)
    with pytest.raises(BandError, match="missing nir; unexpected swir_1"):
        normalize(image, stats, band_names=("red", "swir_1"))
    with pytest.raises(BandError, match="order nir, red"):
        normalize(image, stats, band_names=("nir", "red"))


def test_constant_bands_are_only_shifted():
    image = np.full((1, 4, 4), 3.0, np.float32)
    stats = compute_band_stats([(image, np.ones((4, 4), bool))], ["flat"])
    assert stats.std == (0.0,)
    assert (normalize(image, stats) == 0).all()


def test_a_band_without_valid_pixels_is_an_error():
    accumulator = BandStatsAccumulator(NAMES)
    accumulator.add(np.zeros((2, 3, 3), np.float32), np.zeros((3, 3), bool))
    with pytest.raises(BandError, match="no valid pixel in band"):
        accumulator.result()


def test_a_mapping_that_is_not_statistics_is_a_config_error_naming_its_source():
    with pytest.raises(ConfigError, match=r"bad\.json"):
        BandStats.from_dict({"band_names": ["a"], "mean": [1, 2]}, source="bad.json")
