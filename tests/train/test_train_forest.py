"""The random forest baseline: sklearn's predictions from plain arrays, and a balanced sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from spectraseg.errors import CheckpointError, DataError
from spectraseg.train.forest import (
    ForestModel,
    ForestSettings,
    fit_forest,
    forest_from_sklearn,
    sample_pixels,
)

SMALL = ForestSettings(trees=6, max_depth=8, min_samples_leaf=2, max_pixels=2_000, n_jobs=1)


def _scene(seed: int = 0, size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four channels, three overlapping classes learnable from the channels, nothing ignored."""
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(4, size, size)).astype(np.float32)
    mask = np.stack(
        [
            image[0] > 0.5,
            (image[1] + image[2] > 0.8) | (image[0] > 1.5),  # overlaps class 0
            image[3] < -1.2,
        ]
    )
    return image, mask, np.zeros((size, size), dtype=bool)


def _sklearn_probs(forest: RandomForestClassifier, pixels: np.ndarray) -> np.ndarray:
    """(N, K) probability of True per class from sklearn's multi-output predict_proba."""
    outputs, class_lists = forest.predict_proba(pixels), forest.classes_
    if forest.n_outputs_ == 1:
        outputs, class_lists = [outputs], [class_lists]
    columns = []
    for classes, probs in zip(class_lists, outputs, strict=True):
        labels = list(classes)
        columns.append(probs[:, labels.index(1)] if 1 in labels else np.zeros(len(pixels)))
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("num_classes", [1, 3])
def test_tree_arrays_predict_what_sklearn_predicts_on_held_out_pixels(num_classes: int) -> None:
    image, mask, ignored = _scene(seed=1)
    pixels, labels = sample_pixels(
        [image], [mask[:num_classes]], [ignored], max_pixels=600, balance=0.5, seed=0
    )
    targets = labels[:, 0] if num_classes == 1 else labels
    forest = RandomForestClassifier(n_estimators=5, max_depth=7, random_state=0, n_jobs=1)
    forest.fit(pixels, targets.astype(np.uint8))
    held_out = np.random.default_rng(2).normal(size=(3_000, 4)).astype(np.float32)

    model = forest_from_sklearn(forest, in_channels=4, num_classes=num_classes)

    np.testing.assert_allclose(
        model.predict_proba(held_out), _sklearn_probs(forest, held_out), rtol=0, atol=1e-6
    )


def test_a_class_absent_from_the_sample_has_probability_zero() -> None:
    image, mask, ignored = _scene()
    mask[2] = False
    model = fit_forest([image], [mask], [ignored], SMALL)
    assert model.num_classes == 3
    assert np.all(model.predict_image(image)[2] == 0)


def test_fit_forest_is_sklearn_on_the_sampled_pixels() -> None:
    image, mask, ignored = _scene()
    model = fit_forest([image], [mask], [ignored], SMALL)
    pixels, labels = sample_pixels(
        [image], [mask], [ignored], max_pixels=SMALL.max_pixels, balance=SMALL.balance, seed=0
    )
    forest = RandomForestClassifier(
        n_estimators=6, max_depth=8, min_samples_leaf=2, random_state=0, n_jobs=1
    ).fit(pixels, labels.astype(np.uint8))
    held_out = np.random.default_rng(3).normal(size=(1_000, 4)).astype(np.float32)
    np.testing.assert_allclose(
        model.predict_proba(held_out), _sklearn_probs(forest, held_out), rtol=0, atol=1e-6
    )


def test_arrays_round_trip_through_npz_without_pickle(tmp_path: Path) -> None:
    image, mask, ignored = _scene()
    model = fit_forest([image], [mask], [ignored], SMALL)
    path = tmp_path / "forest.npz"
    np.savez(path, **model.to_arrays())
    with np.load(path, allow_pickle=False) as stored:
        loaded = ForestModel.from_arrays(dict(stored))
    assert all(array.dtype != object for array in model.to_arrays().values())
    assert np.array_equal(loaded.predict_image(image), model.predict_image(image))


def test_predict_image_is_predict_proba_of_each_pixel_and_zero_where_not_finite() -> None:
    image, mask, ignored = _scene()
    model = fit_forest([image], [mask], [ignored], SMALL)
    image[2, 5, 7] = np.nan
    probs = model.predict_image(image, chunk_pixels=100)  # chunks cut rows anywhere
    expected = model.predict_proba(image.reshape(4, -1).T).T.reshape(3, 32, 32)
    assert probs.shape == (3, 32, 32) and probs.dtype == np.float32
    assert np.array_equal(probs, expected)
    assert np.all(probs[:, 5, 7] == 0)
    assert 0 < probs.mean() < 1


def test_sample_respects_the_cap_and_over_represents_a_rare_class() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 64, 64)).astype(np.float32)
    rare = np.zeros((64, 64), dtype=bool)
    rare[:8, :10] = True  # 80 of 4096 pixels, 2 %
    common = np.zeros((64, 64), dtype=bool)
    common[20:, :] = True
    masks, ignored = [np.stack([rare, common])], [np.zeros((64, 64), dtype=bool)]

    _, balanced = sample_pixels([image], masks, ignored, max_pixels=500, balance=1.0, seed=0)
    _, uniform = sample_pixels([image], masks, ignored, max_pixels=500, balance=0.0, seed=0)

    assert len(balanced) <= 500 and len(uniform) <= 500
    assert balanced[:, 0].sum() == 80  # its share exceeds what it has: all of it is drawn
    assert balanced[:, 0].mean() > 5 * rare.mean()
    assert abs(uniform[:, 0].mean() - rare.mean()) < 0.02


def test_sample_never_draws_ignored_or_non_finite_pixels() -> None:
    image, mask, ignored = _scene()
    ignored[:, :8] = True
    image[0, :, :8] = 99.0  # marks ignored pixels
    image[1, 20, 20] = np.inf
    image[2, 21, 21] = np.nan
    pixels, labels = sample_pixels(
        [image], [mask], [ignored], max_pixels=10**6, balance=1.0, seed=0
    )
    assert len(pixels) == 32 * 24 - 2
    assert np.isfinite(pixels).all() and not (pixels[:, 0] == 99.0).any()
    assert labels.shape == (len(pixels), 3)


def test_sample_is_drawn_from_every_scene_and_repeats_with_the_seed() -> None:
    scenes = [_scene(seed=seed, size=16 + 8 * seed) for seed in range(3)]
    images, masks, ignored = (list(part) for part in zip(*scenes, strict=True))
    first = sample_pixels(images, masks, ignored, max_pixels=300, balance=0.5, seed=4)
    again = sample_pixels(images, masks, ignored, max_pixels=300, balance=0.5, seed=4)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    for image in images:  # each scene's pixels are in the sample
        assert np.isin(first[0][:, 0], image[0]).any()


def test_no_valid_pixel_is_a_data_error() -> None:
    image, mask, ignored = _scene()
    with pytest.raises(DataError, match="no valid labelled pixel"):
        fit_forest([image], [mask], [np.ones_like(ignored)], SMALL)


def test_masks_that_do_not_fit_their_image_are_a_data_error() -> None:
    image, mask, ignored = _scene()
    with pytest.raises(DataError, match="mask 0"):
        fit_forest([image], [mask[:, :16]], [ignored], SMALL)


def test_damaged_arrays_are_a_checkpoint_error() -> None:
    image, mask, ignored = _scene()
    arrays = fit_forest([image], [mask], [ignored], SMALL).to_arrays()
    with pytest.raises(CheckpointError, match="lack"):
        ForestModel.from_arrays({k: v for k, v in arrays.items() if k != "value"})
    broken = dict(arrays, children_left=arrays["children_left"] + 10**6)
    with pytest.raises(CheckpointError, match="out of range"):
        ForestModel.from_arrays(broken)
    with pytest.raises(CheckpointError, match="split feature"):
        ForestModel.from_arrays(dict(arrays, in_channels=np.asarray(1)))


def test_arrays_round_trip_as_tensors_loaded_with_weights_only(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    image, mask, ignored = _scene()
    model = fit_forest([image], [mask], [ignored], SMALL)
    path = tmp_path / "forest.pt"
    torch.save({k: torch.from_numpy(v) for k, v in model.to_arrays().items()}, path)
    loaded = ForestModel.from_arrays(torch.load(path, weights_only=True))
    assert np.array_equal(loaded.predict_image(image), model.predict_image(image))
