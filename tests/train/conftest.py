"""What the training tests share: a three-scene sample and the settings of a one-second run."""

from __future__ import annotations

from pathlib import Path

import pytest

from spectraseg.sample import generate_sample

TINY_TRAINING = [
    "data.patch_size=32",
    "train.batch_size=4",
    "train.num_workers=0",
    # One thread: two OpenMP threads on two cores shared with other processes can spin-wait
    # tens of milliseconds per operation; tiny test models gain nothing from a second thread.
    "train.threads=1",
]
"""A 32 px patch, batches of 4, no loader processes: any network trains in about a second."""

TINY_UNET = ["model.unet.depth=3", "model.unet.base_filters=4", *TINY_TRAINING]
"""The smallest U-Net the sample's 32 px patches allow, with `TINY_TRAINING`."""


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 64 x 64 sample scenes: enough for a split into training and validation blocks."""
    return generate_sample(tmp_path_factory.mktemp("sample"), scenes=3, size=64, seed=1)
