"""Per-class thresholds: which probability makes a pixel part of a class.

By default (`auto`) the thresholds tuned on validation data are used: those stored in the
checkpoint, which `spectraseg predict` copies into the probability raster's
`SPECTRASEG_THRESHOLDS` tag. A file (YAML or JSON, `class name: threshold`) overrides them
class by class; classes it does not name keep their `auto` threshold. Without any tuned value
0.5 is used, and the log says so.

A pixel is in a class when `probability >= threshold` (the rule training used to tune them), except
that a threshold of 1 selects nothing: so 0 selects every valid pixel and 1 none, whatever the
probabilities. Invalid (NaN) pixels are never selected. The rule itself lives in
`spectraseg.models.head`; this module only decides which thresholds apply.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spectraseg.errors import ConfigError, did_you_mean
from spectraseg.io.yaml_file import read_yaml

log = logging.getLogger(__name__)

AUTO = "auto"
DEFAULT_THRESHOLD = 0.5


def _check_value(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: threshold {value!r} is not a number.") from None
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ConfigError(f"{where}: threshold {number:g} is not between 0 and 1.")
    return number


def check_thresholds(
    values: Mapping[str, Any], class_names: Sequence[str], *, where: str
) -> dict[str, float]:
    """Validate a `class name -> threshold` mapping: known names, numbers in [0, 1]."""
    checked: dict[str, float] = {}
    for name, value in values.items():
        if str(name) not in class_names:
            raise ConfigError(
                f"{where}: unknown class {str(name)!r}{did_you_mean(str(name), class_names)}."
            )
        checked[str(name)] = _check_value(value, f"{where}: {name}")
    return checked


def load_thresholds(path: str | os.PathLike[str], class_names: Sequence[str]) -> dict[str, float]:
    """Read `class name: threshold` pairs from a YAML or JSON file (JSON is YAML too).

    The pairs may sit at the top level or under a `thresholds:` key.
    """
    source = Path(path)
    raw = read_yaml(source, "thresholds")
    if isinstance(raw, dict) and isinstance(raw.get("thresholds"), dict):
        raw = raw["thresholds"]
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(
            f"{source}: expected a mapping of class name to threshold, e.g. 'building: 0.4'."
        )
    return check_thresholds(raw, class_names, where=str(source))


def resolve_thresholds(
    source: str | os.PathLike[str] | Mapping[str, float] | None,
    class_names: Sequence[str],
    *,
    tuned: Sequence[float] | None = None,
) -> np.ndarray:
    """(K,) float64 thresholds from `auto` (None), a file path or a mapping.

    Args:
        source: `"auto"`/None for the tuned values; a path to a YAML/JSON file; or a mapping.
        tuned: the tuned thresholds (checkpoint or raster tag) in class order, if known.

    Example:
        >>> resolve_thresholds({"water": 0.3}, ["building", "water"], tuned=[0.6, 0.6]).tolist()
        [0.6, 0.3]
    """
    if tuned is not None and len(tuned) != len(class_names):
        raise ConfigError(f"{len(tuned)} tuned thresholds for {len(class_names)} classes.")
    if tuned is None:
        base = np.full(len(class_names), DEFAULT_THRESHOLD)
    else:
        base = np.array([_check_value(t, "tuned thresholds") for t in tuned], dtype=np.float64)
    if source is None or (isinstance(source, str) and source == AUTO):
        if tuned is None:
            log.info("no tuned thresholds known; using %s for every class", DEFAULT_THRESHOLD)
        return base
    if isinstance(source, Mapping):
        overrides = check_thresholds(source, class_names, where="thresholds")
    else:
        overrides = load_thresholds(source, class_names)
    for name, value in overrides.items():
        base[list(class_names).index(name)] = value
    return base
