"""`train.compile`: off by default; when on, the checkpoints are those of the plain network
(no `_orig_mod.` prefix), so prediction and resume load them either way."""

from __future__ import annotations

import functools

import pytest
import torch

from spectraseg.config import load_config
from spectraseg.sample import generate_sample
from spectraseg.train.checkpoint import load_checkpoint
from spectraseg.train.fit import TrainSettings
from spectraseg.workflow.training import train_model

from .conftest import TINY_UNET

TINY = [*TINY_UNET, "train.patches_per_epoch=4", "train.epochs=1"]


def test_compile_is_off_by_default() -> None:
    assert TrainSettings().compile is False


@pytest.mark.slow
def test_checkpoint_keys_are_the_same_with_and_without_compile(tmp_path, monkeypatch) -> None:
    # Dynamo's wrapper (what adds `_orig_mod.`) without inductor's code generation, which
    # takes a minute on a small CPU and is not what this test is about.
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    sample = generate_sample(tmp_path / "sample", scenes=3, size=64, seed=1)
    for name, compiled in (("plain", "false"), ("compiled", "true")):
        config = load_config(None, [*TINY, f"train.compile={compiled}"])
        train_model(config, data_dir=sample, out_dir=tmp_path / name)
    for file in ("best.pt", "last.pt"):
        plain = load_checkpoint(tmp_path / "plain" / file).weights
        compiled = load_checkpoint(tmp_path / "compiled" / file).weights
        assert list(compiled) == list(plain), file
