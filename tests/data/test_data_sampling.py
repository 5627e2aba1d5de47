"""Class-balanced windows: rare classes drawn often at strength 1, uniform at 0, rules kept."""

from __future__ import annotations

import numpy as np
import pytest

from spectraseg.data.sampling import (
    SamplingScene,
    SamplingSettings,
    WindowSampler,
    allowed_windows,
    class_pixel_counts,
    rarest_class,
)
from spectraseg.errors import DataError

SIZE = 64


@pytest.fixture
def rare_square_scene() -> SamplingScene:
    """Class 0 covers the left half; class 1 is a 4 x 4 square (0.4% of pixels)."""
    mask = np.zeros((2, SIZE, SIZE), dtype=bool)
    mask[0, :, : SIZE // 2] = True
    mask[1, 40:44, 50:54] = True
    return SamplingScene(mask=mask, usable=np.ones((SIZE, SIZE), dtype=bool))


def draw_shares(sampler: WindowSampler, draws: int = 4000) -> np.ndarray:
    rng = np.random.default_rng(0)
    counts = np.zeros(sampler.num_classes + 1)
    for _ in range(draws):
        _, drawn = sampler.draw(rng)
        counts[drawn] += 1
    return counts / draws


def sampler_for(
    scene: SamplingScene, balance: float, patch: int = 16, margin: int = 0
) -> WindowSampler:
    settings = SamplingSettings(class_balance=balance, smoothing=0.0)
    return WindowSampler(
        [scene],
        patch_size=patch,
        max_invalid_share=0.5,
        settings=settings,
        rng=np.random.default_rng(0),
        scored_margin_px=margin,
    )


def test_rare_class_is_drawn_far_more_often_than_its_pixel_share(rare_square_scene) -> None:
    shares = draw_shares(sampler_for(rare_square_scene, balance=1.0))
    pixel_share = 16 / SIZE**2
    assert shares[1] > 20 * pixel_share
    # Strength 1 without smoothing: every class, background included, equally often.
    assert shares == pytest.approx([1 / 3] * 3, abs=0.03)


def test_strength_zero_draws_classes_in_proportion_to_their_pixels(rare_square_scene) -> None:
    sampler = sampler_for(rare_square_scene, balance=0.0)
    counts = sampler.pixel_counts / sampler.pixel_counts.sum()
    assert sampler.class_probabilities == pytest.approx(counts)
    assert draw_shares(sampler) == pytest.approx(counts, abs=0.03)


def test_drawn_window_contains_a_pixel_of_the_drawn_class(rare_square_scene) -> None:
    sampler = sampler_for(rare_square_scene, balance=1.0)
    rng = np.random.default_rng(1)
    for _ in range(200):
        window, drawn = sampler.draw(rng)
        if drawn == 1:
            patch = rare_square_scene.mask[
                1, window.row : window.row + 16, window.col : window.col + 16
            ]
            assert patch.any()
        assert 0 <= window.row <= SIZE - 16 and 0 <= window.col <= SIZE - 16


def test_with_a_scored_centre_the_drawn_class_lands_inside_it(rare_square_scene) -> None:
    # Valid-region training scores only the centre 8 x 8 of a 16 px patch: a window drawn for
    # the rare square must hold it there, not in the border the loss ignores.
    sampler = sampler_for(rare_square_scene, balance=1.0, margin=4)
    rng = np.random.default_rng(1)
    for _ in range(300):
        window, drawn = sampler.draw(rng)
        if drawn == 1:
            centre = rare_square_scene.mask[
                1, window.row + 4 : window.row + 12, window.col + 4 : window.col + 12
            ]
            assert centre.any()


def test_a_pixel_no_window_can_centre_still_gets_a_window_holding_it() -> None:
    mask = np.zeros((1, SIZE, SIZE), dtype=bool)
    mask[0, 0, 0] = True  # in the scene's corner: no 16 px window has it 4 px inside
    scene = SamplingScene(mask=mask, usable=np.ones((SIZE, SIZE), dtype=bool))
    sampler = sampler_for(scene, balance=1.0, margin=4)
    rng = np.random.default_rng(0)
    windows = [w for w, drawn in (sampler.draw(rng) for _ in range(100)) if drawn == 0]
    assert windows and all((w.row, w.col) == (0, 0) for w in windows)


def test_multi_label_pixels_are_credited_to_their_rarest_class_once() -> None:
    mask = np.zeros((2, 1, 4), dtype=bool)
    mask[0] = [[True, True, True, False]]
    mask[1] = [[False, True, False, False]]  # overlaps class 0
    assigned = rarest_class(mask, np.ones((1, 4), bool), np.array([1.0, 9.0, 0.5]))
    assert assigned.tolist() == [[0, 1, 0, 2]]
    assert class_pixel_counts(mask, np.ones((1, 4), bool)).tolist() == [3, 1, 1]


def test_patches_with_too_many_nodata_pixels_are_never_drawn() -> None:
    valid = np.ones((SIZE, SIZE), dtype=bool)
    valid[:, :40] = False  # only the right 24 columns have data
    mask = np.zeros((1, SIZE, SIZE), dtype=bool)
    mask[0, 10:20, 50:60] = True
    scene = SamplingScene(mask=mask, usable=valid, valid=valid)
    sampler = WindowSampler(
        [scene],
        patch_size=16,
        max_invalid_share=0.25,
        settings=SamplingSettings(),
        rng=np.random.default_rng(0),
    )
    rng = np.random.default_rng(0)
    for _ in range(300):
        window, _ = sampler.draw(rng)
        patch = valid[window.row : window.row + 16, window.col : window.col + 16]
        assert (~patch).mean() <= 0.25


@pytest.fixture
def sparse_scene() -> SamplingScene:
    """Two small labelled squares (one per class) in a scene otherwise unlabelled: 0.8%."""
    mask = np.zeros((2, SIZE, SIZE), dtype=bool)
    mask[0, 4:8, 4:8] = True
    mask[1, 50:54, 40:44] = True
    labelled = mask.any(axis=0)
    return SamplingScene(mask=mask, usable=labelled, valid=np.ones((SIZE, SIZE), dtype=bool))


def test_unlabelled_pixels_do_not_refuse_a_patch(sparse_scene) -> None:
    sampler = sampler_for(sparse_scene, balance=0.5)  # at most 50% invalid, 99% unlabelled
    assert sampler.class_probabilities[:2].sum() == pytest.approx(1.0)


def test_every_patch_of_sparse_labels_holds_labelled_pixels(sparse_scene) -> None:
    sampler = sampler_for(sparse_scene, balance=0.5)
    rng = np.random.default_rng(0)
    for _ in range(300):
        window, _ = sampler.draw(rng)
        patch = sparse_scene.usable[window.row : window.row + 16, window.col : window.col + 16]
        assert patch.any()


def test_a_patch_is_refused_by_its_nodata_share_alone(sparse_scene) -> None:
    valid = np.ones((SIZE, SIZE), dtype=bool)
    valid[:, :8] = False  # nodata over the first square: its patches are mostly nodata
    scene = SamplingScene(sparse_scene.mask, sparse_scene.usable & valid, valid=valid)
    sampler = WindowSampler(
        [scene],
        patch_size=16,
        max_invalid_share=0.25,
        settings=SamplingSettings(),
        rng=np.random.default_rng(0),
    )
    rng = np.random.default_rng(0)
    for _ in range(300):
        window, _ = sampler.draw(rng)
        patch = valid[window.row : window.row + 16, window.col : window.col + 16]
        assert (~patch).mean() <= 0.25


def test_labels_only_outside_every_allowed_patch_are_a_data_error() -> None:
    valid = np.zeros((SIZE, SIZE), dtype=bool)
    valid[:, 32:] = True
    mask = np.zeros((1, SIZE, SIZE), dtype=bool)
    mask[0, 10:14, 2:6] = True  # labelled, but no allowed patch reaches it
    scene = SamplingScene(mask, mask[0].copy(), valid=valid)
    with pytest.raises(DataError, match="no labelled pixel"):
        WindowSampler(
            [scene],
            patch_size=16,
            max_invalid_share=0.25,
            settings=SamplingSettings(),
            rng=np.random.default_rng(0),
        )


def test_patches_stay_inside_the_training_region(rare_square_scene) -> None:
    region = np.ones((SIZE, SIZE), dtype=bool)
    region[32:, :] = False
    scene = SamplingScene(rare_square_scene.mask, rare_square_scene.usable, region)
    sampler = sampler_for(scene, balance=0.5)
    rng = np.random.default_rng(0)
    rows = [sampler.draw(rng)[0].row for _ in range(300)]
    assert max(rows) + 16 <= 32
    # The rare square lies outside the region: it can never be drawn.
    assert sampler.class_probabilities[1] == 0


def test_allowed_windows_counts_invalid_share_per_patch() -> None:
    usable = np.array([[True, True, False, False]] * 2)
    assert allowed_windows(usable, None, 2, 0.5).tolist() == [[True, True, False]]
    assert allowed_windows(usable, None, 2, 0.0).tolist() == [[True, False, False]]


def test_no_drawable_patch_is_a_data_error() -> None:
    nodata = np.zeros((8, 8), bool)
    scene = SamplingScene(np.zeros((1, 8, 8), bool), nodata, valid=nodata)
    with pytest.raises(DataError, match="max_invalid_share"):
        WindowSampler(
            [scene],
            patch_size=8,
            max_invalid_share=0.5,
            settings=SamplingSettings(),
            rng=np.random.default_rng(0),
        )
