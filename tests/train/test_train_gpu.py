"""The GPU path: mixed precision, channels-last, pinned memory and the fp16 loss scaler on a
CUDA device. Skipped where there is none."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from spectraseg.config import load_config
from spectraseg.train.checkpoint import load_checkpoint
from spectraseg.workflow.training import train_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="no CUDA device: the mixed-precision and channels-last path runs only on one",
    ),
]

TINY = [
    "model.unet.depth=3",
    "model.unet.base_filters=4",
    "data.patch_size=32",
    "train.patches_per_epoch=8",
    "train.batch_size=4",
    "train.num_workers=0",
    "train.early_stopping_patience=null",
]


def train(sample: Path, out: Path, *extra: str, resume: bool = False):
    config = load_config(None, [*TINY, *extra])
    return train_model(
        config, data_dir=sample, out_dir=out, resume=resume, device=torch.device("cuda")
    )


def test_auto_precision_and_channels_last_train_on_the_gpu(sample, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="spectraseg")
    result = train(sample, tmp_path, "train.epochs=2", "train.channels_last=true")
    assert result.epochs == 2
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    assert any(f"training in {expected} on cuda" in r.getMessage() for r in caplog.records)
    weights = load_checkpoint(tmp_path / "best.pt").weights
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_fp16_keeps_its_loss_scaler_across_a_resume(sample, tmp_path) -> None:
    train(sample, tmp_path, "train.epochs=1", "train.precision=fp16")
    saved = load_checkpoint(tmp_path / "last.pt").training_state["grad_scaler"]
    assert saved["scale"] > 0
    result = train(sample, tmp_path, "train.epochs=2", "train.precision=fp16", resume=True)
    assert result.epochs == 2
    assert load_checkpoint(tmp_path / "last.pt").training_state["grad_scaler"]["scale"] > 0


def test_batch_size_auto_on_the_gpu_keeps_a_batch_that_fits(sample, tmp_path) -> None:
    result = train(sample, tmp_path, "train.epochs=1", "train.batch_size_auto=true")
    assert result.history[-1]["batch_size"] == 4
