"""`--compile`: skipped with a log line when the raster cannot repay the warm-up; when it does
compile, the probabilities are those of the eager network."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from spectraseg.predict import compiled
from spectraseg.predict.raster import PredictSettings, predict_raster
from spectraseg.predict.tiling import TilingSettings

SETTINGS = PredictSettings(tiling=TilingSettings(window_px=16, overlap=0.5), tta=2, batch_size=3)


def _probs(path):  # type: ignore[no-untyped-def]
    with rasterio.open(path) as dataset:
        return dataset.read()


def test_a_small_raster_is_not_compiled_and_the_log_says_why(
    pointwise, make_raster, tmp_path, caplog
):
    caplog.set_level("INFO", logger="spectraseg.predict.raster")
    settings = SETTINGS.model_copy(update={"compile": True})
    predict_raster(pointwise(3, 2), make_raster(), tmp_path / "out", settings=settings)
    assert any("not compiling the network" in r.message for r in caplog.records)


@pytest.mark.slow
def test_a_compiled_network_predicts_what_the_eager_one_does(
    conv3x3, make_raster, tmp_path, caplog, monkeypatch
):
    monkeypatch.setattr(compiled, "COMPILE_WARMUP_S", 0.0)
    caplog.set_level("INFO", logger="spectraseg.predict.raster")
    model, raster = conv3x3(3, 2), make_raster(37, 53)
    eager = predict_raster(model, raster, tmp_path / "eager", settings=SETTINGS)
    settings = SETTINGS.model_copy(update={"compile": True})
    fast = predict_raster(model, raster, tmp_path / "compiled", settings=settings)
    assert any("warm-up" in r.message for r in caplog.records)
    assert np.allclose(_probs(fast.probabilities), _probs(eager.probabilities), atol=1e-5)
