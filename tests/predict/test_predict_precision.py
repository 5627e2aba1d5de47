"""`predict.precision`: the float type the network computes in; probabilities stay float32."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import rasterio
import torch

from spectraseg.errors import ConfigError
from spectraseg.predict.raster import PredictSettings, predict_raster
from spectraseg.predict.tiling import TilingSettings

SETTINGS = PredictSettings(tiling=TilingSettings(window_px=16, overlap=0.5), tta=2, batch_size=3)


def probabilities(model, raster, out, device="cpu", **changes):  # type: ignore[no-untyped-def]
    settings = SETTINGS.model_copy(update=changes)
    outputs = predict_raster(model, raster, out, settings=settings, device=device)
    with rasterio.open(outputs.probabilities) as dataset:
        assert dataset.dtypes[0] == "float32"
        return dataset.read()


def test_auto_is_plain_float32_on_the_cpu(conv3x3, make_raster, tmp_path) -> None:
    model, raster = conv3x3(3, 2), make_raster()
    auto = probabilities(model, raster, tmp_path / "auto")
    fp32 = probabilities(model, raster, tmp_path / "fp32", precision="fp32")
    assert np.array_equal(auto, fp32)


def test_bf16_runs_the_network_in_bf16_and_stays_close(conv3x3, make_raster, tmp_path) -> None:
    model, raster = conv3x3(3, 2), make_raster()
    fp32 = probabilities(model, raster, tmp_path / "fp32", precision="fp32")
    bf16 = probabilities(model, raster, tmp_path / "bf16", precision="bf16")
    difference = np.abs(bf16 - fp32)
    assert difference.max() > 0  # the convolution did run in bf16
    assert difference.max() < 0.02


def test_fp16_on_the_cpu_is_refused_naming_the_setting(pointwise, make_raster, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"predict\.precision=fp16: fp16 needs a CUDA GPU"):
        probabilities(pointwise(3, 2), make_raster(), tmp_path / "out", precision="fp16")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device to predict on")
def test_auto_predicts_in_half_precision_on_the_gpu(make_raster, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="spectraseg")
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3, padding=1), torch.nn.Sigmoid()).eval()
    raster = make_raster()
    cpu = probabilities(network, raster, tmp_path / "cpu", precision="fp32")
    gpu = probabilities(copy.deepcopy(network).cuda(), raster, tmp_path / "gpu", device="cuda")
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    assert any(f"predicting in {expected} on cuda" in r.getMessage() for r in caplog.records)
    assert 0 < np.abs(gpu - cpu).max() < 0.02
