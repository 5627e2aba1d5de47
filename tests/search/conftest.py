"""Tiny searches: three 64 px scenes, a 3-level U-Net of 4 to 16 filters, 2 epochs of 8 patches."""

from __future__ import annotations

from pathlib import Path

import pytest

from spectraseg.sample import generate_sample

TINY_CONFIG = """\
data: {patch_size: 32}
model: {unet: {depth: 3, base_filters: 4, max_filters: 16}}
train: {epochs: 2, patches_per_epoch: 8, batch_size: 4, early_stopping_patience: null,
        num_workers: 0, threads: 1}
"""

TINY_SPACE = """\
heartbeat_seconds: 0.5
grace_seconds: 3
parameters:
  train.learning_rate: {low: 1.0e-3, high: 1.0e-2, log: true}
  model.unet.base_filters: {low: 4, high: 8}
  dropout: {choices: [false, true]}
  model.unet.dropout: {low: 0.05, high: 0.5, when: {dropout: true}}
"""


@pytest.fixture(scope="session")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_sample(tmp_path_factory.mktemp("search_sample"), scenes=3, size=64, seed=3)


@pytest.fixture
def tiny_config(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_CONFIG)
    return path


@pytest.fixture
def tiny_space(tmp_path: Path) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(TINY_SPACE)
    return path
