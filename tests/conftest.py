"""Shared tiny fixtures: 32 x 32 scenes with four bands and two labelled squares."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the project; tests that use it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not present at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def torchvision_resnet() -> Callable[..., dict[str, torch.Tensor]]:
    """`make(name, seed=0)`: a state dict with the keys and shapes of torchvision's
    `resnet18/34/50().state_dict()`, random values, built here (no torchvision, no download)."""
    return _torchvision_state


_RESNET_LAYOUTS = {
    "resnet18": ((2, 2, 2, 2), False),
    "resnet34": ((3, 4, 6, 3), False),
    "resnet50": ((3, 4, 6, 3), True),
}


def _torchvision_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Every key of torchvision's `resnetNN().state_dict()` with its shape."""
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7)}

    def norm(prefix: str, channels: int) -> None:
        for key in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{key}"] = (channels,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    norm("bn1", 64)
    counts, bottleneck = _RESNET_LAYOUTS[name]
    channels = 64
    for stage, (count, width) in enumerate(zip(counts, (64, 128, 256, 512), strict=True), 1):
        out = width * 4 if bottleneck else width
        for block in range(count):
            prefix = f"layer{stage}.{block}"
            if bottleneck:
                convs = [(width, channels, 1), (width, width, 3), (out, width, 1)]
            else:
                convs = [(width, channels, 3), (width, width, 3)]
            for index, (o, i, k) in enumerate(convs, start=1):
                shapes[f"{prefix}.conv{index}.weight"] = (o, i, k, k)
                norm(f"{prefix}.bn{index}", o)
            if block == 0 and (stage > 1 or channels != out):
                shapes[f"{prefix}.downsample.0.weight"] = (out, channels, 1, 1)
                norm(f"{prefix}.downsample.1", out)
            channels = out
    shapes["fc.weight"], shapes["fc.bias"] = (1000, channels), (1000,)
    return shapes


def _torchvision_state(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        key: torch.tensor(7) if not shape else torch.randn(shape, generator=generator)
        for key, shape in _torchvision_shapes(name).items()
    }
