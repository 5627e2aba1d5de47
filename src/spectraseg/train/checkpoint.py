"""Self-describing checkpoints: weights plus everything needed to predict or resume.

A checkpoint carries the model's name and settings, the bands it expects in order, the indices
it appends, the normalization statistics, the classes and their tuned thresholds, so prediction
needs nothing but the file. The file is a plain dict of numbers, strings, lists and tensors:
it is written atomically (`io/atomic.py`) and read with `torch.load(weights_only=True)`, which
cannot run code from a malicious file, then validated field by field, so a corrupt, foreign or
newer file fails with one line naming it instead of a KeyError deep in prediction.

`train/predictor.py` turns a checkpoint into the callable `predict_raster` feeds raw bands to.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from spectraseg import __version__
from spectraseg.errors import CheckpointError
from spectraseg.io.atomic import atomic_path

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "Checkpoint",
    "git_commit",
    "library_versions",
    "load_checkpoint",
    "save_checkpoint",
]

log = logging.getLogger(__name__)

FORMAT = "spectraseg-checkpoint"
FORMAT_VERSION = 1
# A run folder's checkpoint that `load_checkpoint(run_dir)` reads.
DEFAULT_NAME = "best.pt"


@dataclass(frozen=True)
class Checkpoint:
    """Everything a trained model needs to predict, and in `last.pt` to resume training."""

    model_name: str
    model_settings: dict[str, Any]
    in_channels: int
    num_classes: int
    head: str
    band_names: tuple[str, ...]
    indices: tuple[str, ...]
    normalization: dict[str, Any]
    class_names: tuple[str, ...]
    class_colours: tuple[tuple[int, int, int], ...]
    thresholds: tuple[float, ...]
    resolution: tuple[float, float] | None
    patch_size: int
    epoch: int
    best_score: float
    seed: int
    versions: dict[str, str]
    git_commit: str | None
    config: dict[str, Any]
    weights: dict[str, Any]
    training_state: dict[str, Any] | None = None
    edge_margin_px: int | None = None
    """Distance from a window border within which predictions differ from the whole image's
    (`predict/edge_margin.py`), measured after training; None: not measured (50% overlap)."""
    tta_jaccard: dict[int, float] | None = None
    """Validation mean Jaccard with 1, 2, 4 and 8 D4 passes (`predict/tta_choice.py`)."""

    def without_training_state(self) -> Checkpoint:
        """The same checkpoint minus optimizer and RNG state (what `best.pt` holds)."""
        return replace(self, training_state=None)


def library_versions() -> dict[str, str]:
    """The versions that produced a checkpoint, for the record and for debugging old runs."""
    return {
        "spectraseg": __version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def git_commit() -> str | None:
    """The commit of the spectraseg source in use, when it runs from a git checkout."""
    source = Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=source,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = result.stdout.strip()
    return commit if result.returncode == 0 and len(commit) == 40 else None


def _to_plain(value: Any) -> Any:
    """Tuples as lists, numpy scalars and arrays as Python numbers and tensors, recursively."""
    if isinstance(value, tuple | list):
        return [_to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))  # a copy; 0-d arrays stay 0-d
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str):
        # str subclasses (torch.__version__ is a TorchVersion) would need their class to load.
        return str(value)
    return value


def save_checkpoint(
    path: str | os.PathLike[str], checkpoint: Checkpoint, *, overwrite: bool = True
) -> None:
    """Write `checkpoint` to `path` atomically: readers see the old file or the whole new one."""
    document: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION}
    for field in fields(Checkpoint):
        value = getattr(checkpoint, field.name)
        document[field.name] = value if field.name == "weights" else _to_plain(value)
    with atomic_path(path, overwrite=overwrite) as temporary:
        torch.save(document, temporary)


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of strings")
    return tuple(value)


def _floats(value: Any) -> tuple[float, ...]:
    if not isinstance(value, list | tuple):
        raise TypeError("expected a list of numbers")
    return tuple(float(v) for v in value)


def _colours(value: Any) -> tuple[tuple[int, int, int], ...]:
    if not isinstance(value, list | tuple):
        raise TypeError("expected a list of colours")
    colours = []
    for colour in value:
        red, green, blue = (int(c) for c in colour)
        colours.append((red, green, blue))
    return tuple(colours)


def _resolution(value: Any) -> tuple[float, float] | None:
    if value is None:
        return None
    x, y = (float(v) for v in value)
    return (x, y)


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError("expected a mapping")
    return dict(value)


def _optional_mapping(value: Any) -> dict[str, Any] | None:
    return None if value is None else _mapping(value)


def _optional_str(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _optional_margin(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TypeError("expected a number of pixels, at least 0")
    return value


def _tta_scores(value: Any) -> dict[int, float] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or any(int(k) not in (1, 2, 4, 8) for k in value):
        raise TypeError("expected Jaccard scores for 1, 2, 4 or 8 passes")
    return {int(k): float(v) for k, v in value.items()}


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("expected an integer")
    return value


# How each field is checked and converted when read back.
_READERS: dict[str, Callable[[Any], Any]] = {
    "model_name": _str,
    "model_settings": _mapping,
    "in_channels": _int,
    "num_classes": _int,
    "head": _str,
    "band_names": _strings,
    "indices": _strings,
    "normalization": _mapping,
    "class_names": _strings,
    "class_colours": _colours,
    "thresholds": _floats,
    "resolution": _resolution,
    "patch_size": _int,
    "epoch": _int,
    "best_score": float,
    "seed": _int,
    "versions": _mapping,
    "git_commit": _optional_str,
    "config": _mapping,
    "weights": _mapping,
    "training_state": _optional_mapping,
    "edge_margin_px": _optional_margin,
    "tta_jaccard": _tta_scores,
}
# Fields added after format 1 was first written: older files lack them and read as None.
_OPTIONAL = ("training_state", "edge_margin_px", "tta_jaccard")


def _validate(document: Any, source: Path) -> Checkpoint:
    if not isinstance(document, Mapping) or document.get("format") != FORMAT:
        raise CheckpointError(f"{source}: not a spectraseg checkpoint (no '{FORMAT}' marker).")
    version = document.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{source}: checkpoint format {version!r} is newer than this spectraseg reads "
            f"({FORMAT_VERSION}). Upgrade spectraseg."
        )
    values: dict[str, Any] = {}
    for field in fields(Checkpoint):
        if field.name not in document:
            if field.name in _OPTIONAL:
                values[field.name] = None
                continue
            raise CheckpointError(f"{source}: checkpoint lacks '{field.name}'; it is incomplete.")
        try:
            values[field.name] = _READERS[field.name](document[field.name])
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{source}: checkpoint field '{field.name}': {error}.") from None
    checkpoint = Checkpoint(**values)
    _check_consistent(checkpoint, source)
    return checkpoint


def _check_consistent(checkpoint: Checkpoint, source: Path) -> None:
    """Cross-field checks: the lists describing channels and classes must agree."""
    channels = len(checkpoint.band_names) + len(checkpoint.indices)
    if checkpoint.in_channels != channels:
        raise CheckpointError(
            f"{source}: in_channels {checkpoint.in_channels} but {len(checkpoint.band_names)} "
            f"bands + {len(checkpoint.indices)} indices; the checkpoint is inconsistent."
        )
    for name in ("class_names", "class_colours", "thresholds"):
        if len(getattr(checkpoint, name)) != checkpoint.num_classes:
            raise CheckpointError(
                f"{source}: {len(getattr(checkpoint, name))} {name} for "
                f"{checkpoint.num_classes} classes; the checkpoint is inconsistent."
            )
    if checkpoint.head not in ("sigmoid", "softmax"):
        raise CheckpointError(f"{source}: unknown head {checkpoint.head!r}.")


def _reason(error: Exception) -> str:
    """The informative line of a torch.load error (its first line is often boilerplate)."""
    # torch's advice to retry with weights_only=False must never reach the user.
    lines = [
        line.strip()
        for line in str(error).splitlines()
        if line.strip() and "weights_only" not in line
    ]
    for line in lines:
        if "WeightsUnpickler error" in line:
            return line.split(" Please ", 1)[0][:200]
    return lines[0][:200] if lines else type(error).__name__


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and validate a checkpoint: a `.pt` file, or a run folder (its `best.pt`).

    Raises:
        CheckpointError: the file is missing, corrupt, not a checkpoint, or from a newer format.
    """
    source = Path(path)
    if source.is_dir():
        source = source / DEFAULT_NAME
    if not source.is_file():
        raise CheckpointError(f"{source}: no such checkpoint. Give a .pt file or a run folder.")
    try:
        document = torch.load(source, map_location="cpu", weights_only=True)
    # A damaged file fails anywhere in torch's reader: UnpicklingError, RuntimeError, EOFError,
    # BadZipFile, even KeyError from the restricted unpickler's memo. All mean "unreadable".
    except Exception as error:
        raise CheckpointError(
            f"{source}: cannot read the checkpoint ({_reason(error)}); it is corrupt or not a "
            "spectraseg checkpoint."
        ) from None
    return _validate(document, source)
