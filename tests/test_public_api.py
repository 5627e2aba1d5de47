"""The public API is small and explicit: this list changes only on purpose."""

from __future__ import annotations

import subprocess
import sys

import spectraseg

PUBLIC = [
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


def test_public_names_are_pinned() -> None:
    assert spectraseg.__all__ == PUBLIC


def test_every_public_name_resolves() -> None:
    for name in PUBLIC:
        assert getattr(spectraseg, name) is not None


def test_importing_the_package_does_not_import_torch() -> None:
    code = "import sys, spectraseg; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_every_export_is_listed() -> None:
    assert set(spectraseg._EXPORTS) | {"__version__"} == set(spectraseg.__all__)
