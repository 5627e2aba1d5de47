"""`read_state_dict`: a file of named tensors (a PyTorch state dict), read safely.

Pretrained encoder weights arrive as a `.pth` saved by torchvision or by hand
(`torch.save(model.state_dict(), path)`). `weights_only=True` means such a file can hold only
tensors and plain containers, never code; anything else is refused with one line naming it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from spectraseg.errors import CheckpointError

__all__ = ["read_state_dict"]


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The tensors of a state-dict file by name, on the CPU.

    A file holding `{"state_dict": {...}}` or `{"model": {...}}` (how training scripts often
    wrap one) is unwrapped.

    Raises:
        CheckpointError: the file is missing, unreadable, or not a mapping of names to tensors.
    """
    source = Path(path)
    if not source.is_file():
        raise CheckpointError(f"{source}: no such weights file.")
    try:
        document = torch.load(source, map_location="cpu", weights_only=True)
    # A damaged or foreign file fails anywhere in torch's restricted reader.
    except Exception as error:
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        reason = reason.split(" Please ", 1)[0]
        raise CheckpointError(f"{source}: cannot read the weights ({reason}).") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(document, Mapping) and isinstance(document.get(wrapper), Mapping):
            document = document[wrapper]
    if not isinstance(document, Mapping) or not document:
        raise CheckpointError(f"{source}: expected a state dict (names to tensors), found none.")
    tensors: dict[str, torch.Tensor] = {}
    for name, value in document.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(
                f"{source}: {name!r} is a {type(value).__name__}, not a tensor; expected a state "
                "dict such as torch.save(model.state_dict(), path) writes."
            )
        tensors[str(name)] = value
    return tensors
