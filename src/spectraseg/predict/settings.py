"""`PredictSettings`: how `predict_raster` predicts and writes (the config's `predict:` section).

Apart from `predict/raster.py` so that the modules choosing settings for a model and a raster
(`choices.py`) and the one predicting with them share it without importing each other.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from spectraseg.predict.blending import WindowFunction
from spectraseg.predict.tiling import TilingSettings
from spectraseg.predict.tta import TTAMean
from spectraseg.settings import Settings
from spectraseg.train.precision import PrecisionChoice

__all__ = ["CPU_BATCH_PIXELS", "GPU_FIRST_BATCH", "PredictSettings"]

# Pixels per CPU batch (two 256 px windows), scaled for other window sizes. Both cores stay
# busy with two windows already; with more, a reference-size U-Net's feature maps outgrow
# malloc's reuse threshold (32 MB) and every pass pays page faults: batches of 4 ran 15% slower.
CPU_BATCH_PIXELS = 2 * 256 * 256
GPU_FIRST_BATCH = 32


class PredictSettings(Settings):
    """How `predict_raster` predicts and writes. In YAML: the `predict:` section."""

    tiling: TilingSettings = TilingSettings()
    window_function: WindowFunction = "spline"
    """Blending weight of each window: spline (smooth, the default), hann, or flat."""
    tta: Literal[1, 2, 4, 8] = 8
    """Test-time augmentation passes over the D4 group: 1 = none, 8 = every rotation/mirror."""
    tta_mean: TTAMean = "arithmetic"
    batch_size: int | None = Field(default=None, ge=1)
    """Windows per model call; None picks one for the device (halved on GPU out-of-memory)."""
    dtype: Literal["float32", "uint8"] = "float32"
    """Probability raster type: float32 (NaN nodata) or uint8 (254 x p, 255 nodata), 4x smaller."""
    cog: bool = False
    """Write Cloud-Optimized GeoTIFFs with overviews (costs one extra copy at the end)."""
    write_mask: bool = True
    """Write `<stem>_mask.tif` and the class map `<stem>_classes.tif` (with its `.qml`)."""
    overviews: bool = True
    """Internal overviews in every output (nearest for masks, average for probabilities), so
    GIS viewers show large rasters zoomed out quickly; costs one more read of each file."""
    channels_last: bool = True
    """Hand the model channels-last batches: the reference U-Net ran 1.2x to 1.45x faster on CPU."""
    precision: PrecisionChoice = "auto"
    """The float type the network computes in: `auto` is bf16 on a GPU that has it, fp16 on an
    older GPU and fp32 on the CPU (`train/precision.py`). Probabilities are float32 either way."""
    compile: bool = False
    """Run the network through `torch.compile` when the raster is large enough to repay the
    warm-up (`compiled.py`); the warm-up is logged."""
