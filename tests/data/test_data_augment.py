"""The D4 group and patch augmentation: group laws, numpy/torch agreement, aligned outputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from spectraseg.data.augment import D4, AugmentSettings, D4Transform, augment, tta_transforms
from spectraseg.errors import ConfigError


@pytest.fixture
def image() -> np.ndarray:
    """(4, 5, 7), all values distinct: any two different transforms give different results."""
    return np.arange(4 * 5 * 7, dtype=np.float32).reshape(4, 5, 7)


def test_d4_has_eight_distinct_transforms_identity_first(image: np.ndarray) -> None:
    assert len(D4) == 8
    assert D4[0].name == "identity"
    assert np.array_equal(D4[0](image), image)
    results = {transform(image).tobytes() + bytes(transform(image).shape) for transform in D4}
    assert len(results) == 8
    assert len({transform.name for transform in D4}) == 8


def test_d4_inverse_restores_every_image(image: np.ndarray) -> None:
    for transform in D4:
        assert np.array_equal(transform.inverse()(transform(image)), image), transform.name


def test_d4_is_closed_under_composition(image: np.ndarray) -> None:
    for second, first in itertools.product(D4, D4):
        composed = second.compose(first)
        assert composed in D4
        assert np.array_equal(composed(image), second(first(image))), (second.name, first.name)


def test_named_transforms_do_what_their_names_say() -> None:
    grid = np.array([[1, 2], [3, 4]])
    by_name = {transform.name: transform(grid).tolist() for transform in D4}
    assert by_name["hflip"] == [[2, 1], [4, 3]]
    assert by_name["vflip"] == [[3, 4], [1, 2]]
    assert by_name["transpose"] == [[1, 3], [2, 4]]
    assert by_name["rot90"] == np.rot90(grid).tolist()
    assert D4Transform.from_name("vflip") == D4Transform(2, True)


def test_torch_and_numpy_agree_on_every_transform(image: np.ndarray) -> None:
    batch = torch.from_numpy(np.stack([image, image + 1]))
    for transform in D4:
        expected = np.stack([transform(image), transform(image + 1)])
        assert torch.equal(transform(batch), torch.from_numpy(expected)), transform.name


def test_numpy_results_are_contiguous_copies(image: np.ndarray) -> None:
    for transform in D4:
        result = transform(image)
        assert result.flags.c_contiguous
        assert not np.shares_memory(result, image)


def test_tta_sets_are_closed_under_inversion() -> None:
    assert [t.name for t in tta_transforms(1)] == ["identity"]
    assert [t.name for t in tta_transforms(4)] == ["identity", "hflip", "vflip", "rot180"]
    assert tta_transforms(8) == D4
    for count in (1, 2, 4, 8):
        chosen = tta_transforms(count)
        assert all(transform.inverse() in chosen for transform in chosen)
    with pytest.raises(ConfigError, match="1, 2, 4 or 8"):
        tta_transforms(3)


def test_augment_keeps_image_mask_and_ignore_aligned() -> None:
    # Image band 0 encodes the mask and band 1 the ignore map; after any random transform the
    # encoding must still hold pixel by pixel.
    rng = np.random.default_rng(0)
    mask = rng.random((2, 6, 6)) < 0.5
    ignore = rng.random((6, 6)) < 0.3
    image = np.stack([mask[0], ignore, mask[1]]).astype(np.float32)
    seen = set()
    for _ in range(40):
        new_image, new_mask, new_ignore = augment(image, mask, ignore, rng, AugmentSettings())
        assert np.array_equal(new_image[0] > 0.5, new_mask[0])
        assert np.array_equal(new_image[2] > 0.5, new_mask[1])
        assert np.array_equal(new_image[1] > 0.5, new_ignore)
        assert new_mask.dtype == bool and new_ignore.dtype == bool
        seen.add(new_mask.tobytes())
    assert len(seen) == 8  # every element of the group is drawn


def test_augment_leaves_inputs_unchanged_and_is_reproducible() -> None:
    image = np.ones((3, 4, 4), dtype=np.float32)
    mask = np.zeros((1, 4, 4), dtype=bool)
    ignore = np.zeros((4, 4), dtype=bool)
    settings = AugmentSettings(gain=0.2, offset=0.1, noise_std=0.05)
    first = augment(image, mask, ignore, np.random.default_rng(7), settings)
    second = augment(image, mask, ignore, np.random.default_rng(7), settings)
    assert np.array_equal(image, np.ones((3, 4, 4)))
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert first[0].dtype == np.float32


def test_gain_and_offset_change_whole_bands_within_bounds() -> None:
    image = np.ones((5, 4, 4), dtype=np.float32)
    mask = np.zeros((1, 4, 4), dtype=bool)
    ignore = np.zeros((4, 4), dtype=bool)
    rng = np.random.default_rng(1)
    gained, _, _ = augment(image, mask, ignore, rng, AugmentSettings(d4=False, gain=0.1))
    assert np.all(np.abs(gained - 1) <= 0.1)
    assert np.all(gained == gained[:, :1, :1])  # one factor per band
    assert len(np.unique(gained[:, 0, 0])) == 5
    shifted, _, _ = augment(image, mask, ignore, rng, AugmentSettings(d4=False, offset=0.5))
    assert np.all(np.abs(shifted - 1) <= 0.5)
    noisy, _, _ = augment(image, mask, ignore, rng, AugmentSettings(d4=False, noise_std=0.1))
    assert 0.05 < float(np.std(noisy)) < 0.15


def test_settings_reject_negative_and_unknown_values() -> None:
    with pytest.raises(ValueError, match="gain"):
        AugmentSettings(gain=-0.1)
    with pytest.raises(ValueError, match="noise"):
        AugmentSettings.model_validate({"noise": 0.1})
