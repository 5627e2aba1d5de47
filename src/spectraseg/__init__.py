"""spectraseg: semantic segmentation of multispectral satellite imagery with U-Net.

The public API, in workflow order. Names load on first use, so `import spectraseg` (and the
command line's `--help`) does not pay for torch, GDAL and matplotlib until they are needed.

    import spectraseg as ss
    data = ss.generate_sample("sample", scenes=4)
    result = ss.train_model(ss.load_config(None), data_dir=data, out_dir="run")
    model = ss.load_model("run")
    ss.predict_raster(model, "scene.tif", "predictions")
    ss.vectorize("predictions/scene_mask.tif", "predictions/scene.geojson")
    evaluation, _ = ss.evaluate_paths("predictions", "truth")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from spectraseg.version import __version__

# Public name -> module that defines it.
_EXPORTS = {
    "SpectrasegError": "spectraseg.errors",
    "Grid": "spectraseg.grid",
    "Scene": "spectraseg.data.scene",
    "load_config": "spectraseg.config",
    "generate_sample": "spectraseg.sample",
    "open_stack": "spectraseg.io.rasters",
    "write_raster": "spectraseg.io.geotiff",
    "load_dataset": "spectraseg.data.catalog",
    "UNet": "spectraseg.models.unet",
    "train_model": "spectraseg.workflow.training",
    "load_checkpoint": "spectraseg.train.checkpoint",
    "load_model": "spectraseg.predict.load_model",
    "predict_raster": "spectraseg.predict.raster",
    "vectorize": "spectraseg.postprocess.vectorize",
    "evaluate_arrays": "spectraseg.evaluate.scores",
    "evaluate_paths": "spectraseg.evaluate.runner",
}

__all__ = [  # noqa: RUF022 - workflow order reads better than alphabetical
    "__version__",
    "SpectrasegError",
    "Grid",
    "Scene",
    "load_config",
    "generate_sample",
    "open_stack",
    "write_raster",
    "load_dataset",
    "UNet",
    "train_model",
    "load_checkpoint",
    "load_model",
    "predict_raster",
    "vectorize",
    "evaluate_arrays",
    "evaluate_paths",
]

if TYPE_CHECKING:
    from spectraseg.config import load_config
    from spectraseg.data.catalog import load_dataset
    from spectraseg.data.scene import Scene
    from spectraseg.errors import SpectrasegError
    from spectraseg.evaluate.runner import evaluate_paths
    from spectraseg.evaluate.scores import evaluate_arrays
    from spectraseg.grid import Grid
    from spectraseg.io.geotiff import write_raster
    from spectraseg.io.rasters import open_stack
    from spectraseg.models.unet import UNet
    from spectraseg.postprocess.vectorize import vectorize
    from spectraseg.predict.load_model import load_model
    from spectraseg.predict.raster import predict_raster
    from spectraseg.sample import generate_sample
    from spectraseg.train.checkpoint import load_checkpoint
    from spectraseg.workflow.training import train_model


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'spectraseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
