"""Mixed precision: auto picks by device, bf16 may be forced on the CPU, fp16 may not, and the
fp16 loss scaler neither changes a step nor is lost by a resume."""

from __future__ import annotations

import copy
import dataclasses
import logging

import pytest
import torch

from spectraseg.config import load_config
from spectraseg.errors import ConfigError
from spectraseg.models.unet import UNet
from spectraseg.train.checkpoint import load_checkpoint, save_checkpoint
from spectraseg.train.fit import TrainSettings
from spectraseg.train.loop import train_one_epoch
from spectraseg.train.losses import LossSettings, build_loss
from spectraseg.train.precision import resolve_precision, restore_scaler, scaler_state
from spectraseg.workflow.training import train_model

from .conftest import TINY_UNET

CPU = torch.device("cpu")
TINY = [*TINY_UNET, "train.patches_per_epoch=4", "train.epochs=1"]


def test_auto_is_the_default_and_float32_on_the_cpu() -> None:
    assert TrainSettings().precision == "auto"
    chosen = resolve_precision("auto", CPU)
    assert chosen.precision == "fp32" and chosen.dtype is None
    assert not chosen.grad_scaler().is_enabled()


def test_fp16_on_the_cpu_is_a_one_line_error_naming_the_setting_and_the_fix() -> None:
    with pytest.raises(ConfigError, match=r"train.precision=fp16: .*CUDA GPU.*auto") as error:
        resolve_precision("fp16", CPU)
    assert "\n" not in str(error.value)


def test_bf16_forced_on_the_cpu_trains_and_says_so(sample, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="spectraseg")
    config = load_config(None, [*TINY, "train.precision=bf16"])
    result = train_model(config, data_dir=sample, out_dir=tmp_path)
    assert result.epochs == 1
    assert any("training in bf16 on the CPU" in r.getMessage() for r in caplog.records)
    weights = load_checkpoint(tmp_path / "last.pt").weights
    # Autocast runs the convolutions in bf16; the weights themselves stay float32.
    assert all(w.dtype == torch.float32 for w in weights.values() if w.is_floating_point())
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_a_scaled_step_equals_an_unscaled_one_clipping_included() -> None:
    torch.manual_seed(0)
    model = UNet(3, 2, depth=3, base_filters=4, batch_norm=False)
    image = torch.randn(2, 3, 16, 16)
    batch = [(image, (image[:, :2] > 0).float(), torch.zeros(2, 16, 16, dtype=torch.bool))]

    def stepped(scaler: torch.amp.GradScaler | None) -> list[torch.Tensor]:
        trained = copy.deepcopy(model)
        optimizer = torch.optim.SGD(trained.parameters(), lr=0.1)
        train_one_epoch(
            trained,
            batch,
            optimizer,
            build_loss(LossSettings(), "sigmoid"),
            device=CPU,
            learning_rate=lambda step: 0.1,
            clip_norm=1e-3,  # small enough to clip: the scaled norm must not be what is clipped
            scaler=scaler,
        )
        # The change of each weight: small next to the weights, so compared on its own.
        return [
            after.detach() - before
            for after, before in zip(trained.parameters(), model.parameters(), strict=True)
        ]

    scaled = stepped(torch.amp.GradScaler("cpu", init_scale=1024.0))
    for plain, with_scaler in zip(stepped(None), scaled, strict=True):
        torch.testing.assert_close(with_scaler, plain, rtol=1e-4, atol=1e-12)


def test_the_scaler_state_round_trips_through_last_pt(sample, tmp_path) -> None:
    train_model(load_config(None, TINY), data_dir=sample, out_dir=tmp_path)
    last = load_checkpoint(tmp_path / "last.pt")
    assert last.training_state["grad_scaler"] == {}  # fp32 on the CPU: no scaler to keep
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=7)
    parameter = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    scaler.scale((parameter * float("inf")).sum()).backward()
    scaler.step(optimizer)  # an overflow: skipped, and the factor halved
    scaler.update()
    assert scaler.get_scale() == 512.0
    training_state = {**last.training_state, "grad_scaler": scaler_state(scaler)}
    save_checkpoint(tmp_path / "last.pt", dataclasses.replace(last, training_state=training_state))

    saved = load_checkpoint(tmp_path / "last.pt").training_state  # weights_only=True
    resumed = torch.amp.GradScaler("cpu")
    restore_scaler(resumed, saved["grad_scaler"])
    assert resumed.state_dict() == scaler.state_dict()


def test_a_run_without_a_saved_scaler_keeps_the_scalers_start() -> None:
    scaler = torch.amp.GradScaler("cpu", init_scale=64.0)
    restore_scaler(scaler, {})
    assert scaler.get_scale() == 64.0
