"""Self-describing checkpoints: the model card, the weights, and what resuming needs.

A checkpoint carries the model card whole (`spectraseg.models.card.ModelCard`: bands, indices,
normalization, classes with their ids, head, thresholds, patch and measured facts), so
prediction needs nothing but the file. The file is a plain dict of numbers, strings, lists and
tensors: it is written atomically (`io/atomic.py`) and read with
`torch.load(weights_only=True)`, which cannot run code from a malicious file, then validated,
so a corrupt, foreign or newer file fails with one line naming it instead of a KeyError deep
in prediction.

Format 1 (spectraseg 0.1.0 before the card) kept the same facts in separate keys
(`band_names`, `indices`, `normalization`, `config`, ...); such files still load, converted to
a card (class ids 1..K, which is what they meant).

`predict/predictor.py` turns a checkpoint into the callable `predict_raster` feeds raw bands to.
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
from pydantic import ValidationError

from spectraseg.data.indices import IndexSettings
from spectraseg.errors import CheckpointError
from spectraseg.io.atomic import atomic_path
from spectraseg.models.card import (
    CARD_FORMAT_VERSION,
    PER_PIXEL_MODELS,
    CardClass,
    ModelCard,
    Normalization,
)
from spectraseg.version import __version__

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
FORMAT_VERSION = 2
# A run folder's checkpoint that `load_checkpoint(run_dir)` reads.
DEFAULT_NAME = "best.pt"


@dataclass(frozen=True)
class Checkpoint:
    """A model card and weights, plus in `last.pt` what resuming training needs."""

    card: ModelCard
    epoch: int
    best_score: float
    seed: int
    versions: dict[str, str]
    git_commit: str | None
    config: dict[str, Any]
    """The training run's whole config, for the record; prediction reads only the card."""
    weights: dict[str, Any]
    training_state: dict[str, Any] | None = None

    def without_training_state(self) -> Checkpoint:
        """The same checkpoint minus optimizer and RNG state (what `best.pt` holds)."""
        return replace(self, training_state=None)

    def with_card(self, **changes: Any) -> Checkpoint:
        """The same checkpoint with card fields changed (and validated again)."""
        card = ModelCard.model_validate({**self.card.model_dump(), **changes})
        return replace(self, card=card)


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
        if field.name == "card":
            value = checkpoint.card.model_dump()
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


def _card(value: Any) -> ModelCard:
    if not isinstance(value, Mapping):
        raise TypeError("expected a mapping")
    version = value.get("format_version", CARD_FORMAT_VERSION)
    if not isinstance(version, int) or version > CARD_FORMAT_VERSION:
        raise ValueError(
            f"model card format {version!r} is newer than this spectraseg reads "
            f"({CARD_FORMAT_VERSION}); upgrade spectraseg"
        )
    try:
        return ModelCard.model_validate(dict(value))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{where}: {str(first['msg']).removeprefix('Value error, ')}") from None


# How each field is checked and converted when read back.
_READERS: dict[str, Callable[[Any], Any]] = {
    "card": _card,
    "epoch": _int,
    "best_score": float,
    "seed": _int,
    "versions": _mapping,
    "git_commit": _optional_str,
    "config": _mapping,
    "weights": _mapping,
    "training_state": _optional_mapping,
}
# Fields added after the format was first written: older files lack them and read as None.
_OPTIONAL = ("training_state",)


def _validate(document: Any, source: Path) -> Checkpoint:
    if not isinstance(document, Mapping) or document.get("format") != FORMAT:
        raise CheckpointError(f"{source}: not a spectraseg checkpoint (no '{FORMAT}' marker).")
    version = document.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{source}: checkpoint format {version!r} is newer than this spectraseg reads "
            f"({FORMAT_VERSION}). Upgrade spectraseg."
        )
    if version == 1:
        document = _card_from_format_1(document, source)
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
    return Checkpoint(**values)


# Format 1's card fields, each with how it was checked.
_FORMAT_1: dict[str, Callable[[Any], Any]] = {
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
    "config": _mapping,
}
_FORMAT_1_OPTIONAL: dict[str, Callable[[Any], Any]] = {
    "edge_margin_px": _optional_margin,
    "tta_jaccard": _tta_scores,
}


def _card_from_format_1(document: Mapping[str, Any], source: Path) -> dict[str, Any]:
    """A format-1 document with its separate model keys folded into a `card`."""
    old: dict[str, Any] = {}
    for name, reader in (*_FORMAT_1.items(), *_FORMAT_1_OPTIONAL.items()):
        if name not in document:
            if name in _FORMAT_1_OPTIONAL:
                old[name] = None
                continue
            raise CheckpointError(f"{source}: checkpoint lacks '{name}'; it is incomplete.")
        try:
            old[name] = reader(document[name])
        except (TypeError, ValueError) as error:
            raise CheckpointError(f"{source}: checkpoint field '{name}': {error}.") from None
    channels = len(old["band_names"]) + len(old["indices"])
    if old["in_channels"] != channels:
        raise CheckpointError(
            f"{source}: in_channels {old['in_channels']} but {len(old['band_names'])} "
            f"bands + {len(old['indices'])} indices; the checkpoint is inconsistent."
        )
    for name in ("class_names", "class_colours", "thresholds"):
        if len(old[name]) != old["num_classes"]:
            raise CheckpointError(
                f"{source}: {len(old[name])} {name} for "
                f"{old['num_classes']} classes; the checkpoint is inconsistent."
            )
    if old["head"] not in ("sigmoid", "softmax"):
        raise CheckpointError(f"{source}: unknown head {old['head']!r}.")
    data = old["config"].get("data") or {}
    custom = dict((data.get("indices") or {}).get("custom") or {})
    normalization = dict(old["normalization"])
    depth = old["model_settings"].get("depth", 5) if old["model_name"] == "unet" else 0
    card = {
        "format_version": CARD_FORMAT_VERSION,
        "library_version": str(_mapping(document.get("versions", {})).get("spectraseg", "")),
        "model": old["model_name"],
        "model_settings": old["model_settings"],
        "band_names": old["band_names"],
        "resolution": old["resolution"],
        "indices": IndexSettings(
            names=old["indices"],
            custom={name: spec for name, spec in custom.items() if name in old["indices"]},
        ),
        "normalization": Normalization(
            method=normalization.pop("method", "standard"), stats=normalization
        ),
        "classes": [
            CardClass(name=name, id=position + 1, colour=colour)
            for position, (name, colour) in enumerate(
                zip(old["class_names"], old["class_colours"], strict=True)
            )
        ],
        "head": old["head"],
        "thresholds": old["thresholds"],
        "patch_px": old["patch_size"],
        "size_multiple": 1 << int(depth),
        "per_pixel": old["model_name"] in PER_PIXEL_MODELS,
        "edge_margin_px": old["edge_margin_px"],
        "tta_jaccard": old["tta_jaccard"],
    }
    try:
        converted = ModelCard.model_validate(card)
    except ValidationError as error:
        first = error.errors()[0]
        raise CheckpointError(
            f"{source}: checkpoint format 1 cannot be converted to a model card "
            f"({first['msg']}); retrain it with this spectraseg."
        ) from None
    return {**document, "card": converted.model_dump()}


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
