"""Streamed training data: the same patches, windows, weights and statistics as in memory."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from rasterio.windows import Window

from spectraseg.data.augment import AugmentSettings
from spectraseg.data.catalog import load_dataset, open_lazy_dataset, select_classes
from spectraseg.data.dataset import TrainingData, prepare_training_data
from spectraseg.data.indices import IndexSettings
from spectraseg.data.sampling import SamplingSettings
from spectraseg.data.settings import DataSettings
from spectraseg.data.split import SplitSettings
from spectraseg.data.streamed import prepare_streamed_training_data
from spectraseg.data.window_cache import BlockCache
from spectraseg.sample import generate_sample

SIZE = 96


@pytest.fixture(scope="module")
def three_scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("three"), scenes=3, size=SIZE, seed=3)


@pytest.fixture(scope="module")
def one_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("one"), scenes=1, size=SIZE, seed=5)


def both_paths(
    folder: Path, data: DataSettings, *, strip_rows: int | None = None, **kwargs: Any
) -> tuple[TrainingData, TrainingData]:
    """(in memory, streamed) training data of one folder with the same settings and seed."""
    options: dict[str, Any] = {
        "indices": data.indices,
        "labels": data.labels,
        "band_names": data.bands or None,
        "resolution": data.resolution,
    }
    scenes, classes = load_dataset(folder, **options)
    lazy, _ = open_lazy_dataset(folder, **options)
    if data.classes:
        scenes, _ = select_classes(scenes, classes, data.classes)
        lazy, _ = select_classes(lazy, classes, data.classes)
    common: dict[str, Any] = {
        "data": data,
        "sampling": kwargs.pop("sampling", SamplingSettings()),
        "augment_settings": AugmentSettings(),
        "size_multiple": 8,
        "patches_per_epoch": 24,
        "seed": 7,
    }
    stats = kwargs.pop("stats", None)
    memory = prepare_training_data(scenes, **common, stats=stats)
    streaming = prepare_streamed_training_data(
        lazy, **common, stats=stats, strip_rows=strip_rows, **kwargs
    )
    return memory, streaming


def assert_same_patches(memory: TrainingData, streaming: TrainingData, epochs: int = 2) -> None:
    for epoch in range(epochs):
        memory.train.set_epoch(epoch)
        streaming.train.set_epoch(epoch)
        for index in range(len(memory.train)):
            for a, b in zip(memory.train[index], streaming.train[index], strict=True):
                assert torch.equal(a, b), f"epoch {epoch}, patch {index}"


def assert_same_validation(memory: TrainingData, streaming: TrainingData) -> None:
    assert memory.validation.windows == streaming.validation.windows
    for a, b in zip(memory.validation, streaming.validation, strict=True):
        for left, right in zip(a, b, strict=True):
            np.testing.assert_array_equal(left, right)


def test_streamed_patches_are_the_in_memory_patches_for_the_same_seed(three_scenes) -> None:
    memory, streaming = both_paths(three_scenes, DataSettings(patch_size=32), strip_rows=40)
    assert streaming.split.train_scenes == memory.split.train_scenes
    assert streaming.stats.band_names == memory.stats.band_names
    np.testing.assert_allclose(streaming.stats.mean, memory.stats.mean, rtol=1e-6)
    np.testing.assert_allclose(streaming.stats.std, memory.stats.std, rtol=1e-6)
    # Percentiles come from histograms whose range follows the data fed first: within a bin.
    memory, streaming = both_paths(
        three_scenes, DataSettings(patch_size=32), strip_rows=40, stats=memory.stats
    )
    assert_same_patches(memory, streaming)
    assert_same_validation(memory, streaming)


def test_a_streamed_epoch_iterates_to_its_end_and_stops(three_scenes) -> None:
    _, streaming = both_paths(three_scenes, DataSettings(patch_size=32), strip_rows=40)
    assert len(list(streaming.train)) == len(streaming.train)


def test_class_balanced_draws_follow_the_same_weights(three_scenes) -> None:
    sampling = SamplingSettings(class_balance=1.0, max_locations_per_class=50)
    memory, streaming = both_paths(
        three_scenes, DataSettings(patch_size=32), strip_rows=24, sampling=sampling
    )
    a, b = memory.train.sampler, streaming.train.sampler
    np.testing.assert_array_equal(a.pixel_counts, b.pixel_counts)
    np.testing.assert_array_equal(a.weights, b.weights)
    np.testing.assert_array_equal(a.class_probabilities, b.class_probabilities)
    for scene_a, scene_b in zip(a._locations, b._locations, strict=True):
        for class_a, class_b in zip(scene_a, scene_b, strict=True):
            np.testing.assert_array_equal(class_a, class_b)
    for seed in range(40):
        assert a.draw(np.random.default_rng(seed)) == b.draw(np.random.default_rng(seed))


def test_spatial_blocks_with_their_gap_indices_and_a_class_subset_stream_the_same(
    one_scene,
) -> None:
    data = DataSettings(
        patch_size=24,
        indices=IndexSettings(names=("ndvi",)),
        classes=("building", "water"),
        max_invalid_share=0.3,
        split=SplitSettings(window_px=16),
    )
    memory, streaming = both_paths(one_scene, data, strip_rows=17)
    assert memory.split.mode == streaming.split.mode == "blocks"
    assert streaming.stats.band_names[-1] == "ndvi"
    memory, streaming = both_paths(one_scene, data, strip_rows=17, stats=memory.stats)
    assert_same_patches(memory, streaming, epochs=1)
    assert_same_validation(memory, streaming)


def test_resampled_scenes_stream_the_in_memory_pixels(one_scene) -> None:
    native, _ = open_lazy_dataset(one_scene)
    resolution = native[0].grid.resolution[0] * 1.5
    lazy, _ = open_lazy_dataset(one_scene, resolution=resolution)
    scenes, _ = load_dataset(one_scene, resolution=resolution)
    assert lazy[0].shape == scenes[0].shape == (SIZE * 2 // 3, SIZE * 2 // 3)
    image, valid, mask, ignore = lazy[0].read(Window(5, 9, 20, 13))
    rows, cols = slice(9, 22), slice(5, 25)
    np.testing.assert_allclose(image, scenes[0].image[:, rows, cols], atol=1e-6)
    np.testing.assert_array_equal(valid, scenes[0].valid[rows, cols])
    np.testing.assert_array_equal(mask, scenes[0].mask[:, rows, cols])
    np.testing.assert_array_equal(ignore, scenes[0].ignore[rows, cols])


def test_a_window_assembled_from_cached_blocks_equals_one_read_whole(three_scenes) -> None:
    lazy, _ = open_lazy_dataset(three_scenes)
    memory, _ = both_paths(three_scenes, DataSettings(patch_size=32))
    blocks = BlockCache(lazy, memory.stats, "standard", block_px=20)
    first = blocks.read(1, 13, 7, 45, 50)
    decoded = blocks.misses
    again = blocks.read(1, 13, 7, 45, 50)
    assert (blocks.hits, blocks.misses) == (decoded, decoded)
    whole = BlockCache(lazy, memory.stats, "standard", block_px=SIZE).read(1, 13, 7, 45, 50)
    for a, b, c in zip(first, again, whole, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_the_block_cache_stays_within_its_bytes(three_scenes) -> None:
    lazy, _ = open_lazy_dataset(three_scenes)
    memory, _ = both_paths(three_scenes, DataSettings(patch_size=32))
    blocks = BlockCache(lazy, memory.stats, "standard", block_px=20, max_bytes=40_000)
    blocks.read(1, 0, 0, SIZE, SIZE)
    assert 0 < blocks._bytes <= 40_000


def test_a_streamed_dataset_travels_to_a_worker_without_open_files(three_scenes) -> None:
    _, streaming = both_paths(three_scenes, DataSettings(patch_size=32))
    streaming.train[0]
    copy = pickle.loads(pickle.dumps(streaming.train))
    assert copy.blocks._bytes == 0
    assert all(scene._opened is None for scene in copy.blocks.scenes)
    for a, b in zip(copy[3], streaming.train[3], strict=True):
        assert torch.equal(a, b)
