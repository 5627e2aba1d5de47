"""The index-threshold baseline: one channel, threshold and direction per class, for Jaccard."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from spectraseg.errors import CheckpointError, ConfigError
from spectraseg.train.index_threshold import (
    IndexThresholdModel,
    IndexThresholdSettings,
    fit_index_threshold,
)
from spectraseg.train.metrics import ClassCounts

CHANNELS = ("red", "nir", "ndwi")


def _lake(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """32 x 32: water has NDWI in [0.4, 0.9], land in [-0.8, 0.2]; shadow is the darkest red."""
    rng = np.random.default_rng(seed)
    water = np.zeros((32, 32), dtype=bool)
    water[4:14, 2:20] = True
    ndwi = np.where(water, rng.uniform(0.4, 0.9, water.shape), rng.uniform(-0.8, 0.2, water.shape))
    red = rng.uniform(0.0, 1.0, water.shape)
    shadow = np.zeros_like(water)
    shadow[20:26, 20:30] = True
    red[shadow] = rng.uniform(-2.0, -1.5, int(shadow.sum()))
    nir = rng.normal(size=water.shape)
    image = np.stack([red, nir, ndwi]).astype(np.float32)
    return image, np.stack([water, shadow]), np.zeros(water.shape, dtype=bool)


def test_water_is_found_by_thresholding_ndwi_inside_the_gap() -> None:
    image, mask, ignored = _lake()
    model = fit_index_threshold([image], [mask], [ignored], CHANNELS)
    water = model.summary(["water", "shadow"])[0]
    assert (water.channel_name, water.direction) == ("ndwi", ">=")
    assert 0.2 < water.threshold <= 0.4
    assert water.train_jaccard == 1.0
    assert np.array_equal(model.predict_image(image)[0] >= 0.5, mask[0])


def test_a_class_below_a_threshold_gets_the_lower_direction() -> None:
    image, mask, ignored = _lake()
    shadow = fit_index_threshold([image], [mask], [ignored], CHANNELS).summary()[1]
    assert (shadow.channel_name, shadow.direction) == ("red", "<=")
    assert -1.5 <= shadow.threshold < 0.0
    assert shadow.train_jaccard == 1.0


def test_ignored_pixels_do_not_move_the_threshold() -> None:
    image, mask, ignored = _lake()
    image[2, 28:, :] = 0.8  # land that looks like water ...
    ignored[28:, :] = True  # ... under the ignore label
    model = fit_index_threshold([image], [mask], [ignored], CHANNELS)
    assert model.train_jaccard[0] == 1.0
    assert 0.2 < model.threshold[0] <= 0.4
    counted = fit_index_threshold([image], [mask], [np.zeros_like(ignored)], CHANNELS)
    assert counted.train_jaccard[0] < 1.0


def test_an_inseparable_class_gets_its_best_rule_and_an_honest_score(
    caplog: pytest.LogCaptureFixture,
) -> None:
    image, mask, ignored = _lake()
    noise = np.random.default_rng(5).random((32, 32)) < 0.3
    masks = [np.concatenate([mask, noise[None]])]
    with caplog.at_level(logging.WARNING):
        model = fit_index_threshold(
            [image], masks, [ignored], CHANNELS, class_names=["w", "s", "n"]
        )
    counts = ClassCounts.zeros(3)
    counts.add(model.predict_image(image) >= 0.5, masks[0])
    np.testing.assert_allclose(model.train_jaccard, counts.jaccard(), atol=1e-12)
    assert model.train_jaccard[2] < 0.5
    assert "n: the best single-channel rule" in caplog.text


def test_half_the_soft_output_is_exactly_the_rule() -> None:
    model = IndexThresholdModel(
        channel=np.array([0, 0]),
        threshold=np.array([0.25, 0.25]),
        direction=np.array([1, -1]),
        scale=np.array([1e-3, 1e-3]),
        train_jaccard=np.array([1.0, 1.0]),
        in_channels=1,
    )
    at = np.float32(0.25)
    values = [-1.0, np.nextafter(at, np.float32(0)), at, np.nextafter(at, np.float32(1)), 1.0]
    image = np.array(values, dtype=np.float32).reshape(1, 1, -1)
    probs = model.predict_image(image)
    assert np.array_equal(probs[0, 0] >= 0.5, image[0, 0] >= 0.25)
    assert np.array_equal(probs[1, 0] >= 0.5, image[0, 0] <= 0.25)
    assert probs[0, 0, 0] == 0 and probs[0, 0, -1] == 1  # steep: saturated far from the cut


def test_arrays_round_trip_reproduces_predictions(tmp_path: Path) -> None:
    image, mask, ignored = _lake()
    model = fit_index_threshold([image], [mask], [ignored], CHANNELS)
    path = tmp_path / "rules.npz"
    np.savez(path, **model.to_arrays())
    with np.load(path, allow_pickle=False) as stored:
        loaded = IndexThresholdModel.from_arrays(dict(stored), channel_names=CHANNELS)
    assert np.array_equal(loaded.predict_image(image), model.predict_image(image))
    assert loaded.summary() == model.summary()


def test_a_class_without_training_pixels_is_never_predicted() -> None:
    image, mask, ignored = _lake()
    mask[1] = False
    model = fit_index_threshold([image], [mask], [ignored], CHANNELS)
    assert np.isnan(model.train_jaccard[1])
    assert np.all(model.predict_image(image)[1] == 0)


def test_channels_setting_limits_the_choice_and_names_are_checked() -> None:
    image, mask, ignored = _lake()
    settings = IndexThresholdSettings(channels=("nir", "red"))
    model = fit_index_threshold([image], [mask], [ignored], CHANNELS, settings)
    assert model.summary()[0].channel_name in {"nir", "red"}
    assert model.train_jaccard[0] < 1.0
    with pytest.raises(ConfigError, match="did you mean 'ndwi'"):
        fit_index_threshold(
            [image], [mask], [ignored], CHANNELS, IndexThresholdSettings(channels=("ndvw",))
        )


def test_damaged_arrays_are_a_checkpoint_error() -> None:
    image, mask, ignored = _lake()
    arrays = fit_index_threshold([image], [mask], [ignored], CHANNELS).to_arrays()
    with pytest.raises(CheckpointError, match="lack"):
        IndexThresholdModel.from_arrays({k: v for k, v in arrays.items() if k != "scale"})
    with pytest.raises(CheckpointError, match="channel is outside"):
        IndexThresholdModel.from_arrays(dict(arrays, in_channels=np.asarray(1)))


def test_arrays_round_trip_as_tensors_loaded_with_weights_only(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    image, mask, ignored = _lake()
    model = fit_index_threshold([image], [mask], [ignored], CHANNELS)
    path = tmp_path / "rules.pt"
    torch.save({k: torch.from_numpy(v) for k, v in model.to_arrays().items()}, path)
    loaded = IndexThresholdModel.from_arrays(torch.load(path, weights_only=True))
    assert np.array_equal(loaded.predict_image(image), model.predict_image(image))
