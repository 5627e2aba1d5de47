"""`read_yaml`: the one reader of YAML files (configs, classes, thresholds, rules, spaces).

Every YAML file is read with `yaml.safe_load` (no Python objects, ever), and every failure is
one line naming the file: missing, unreadable, or not YAML, with the parser's reason on that
same line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from spectraseg.errors import ConfigError, SpectrasegError

__all__ = ["read_yaml"]


def read_yaml(
    path: str | os.PathLike[str],
    what: str,
    *,
    error: type[SpectrasegError] = ConfigError,
    hint: str = "",
) -> Any:
    """The document in a YAML (or JSON) file; None when the file is empty.

    Args:
        what: what the file is, for the messages ("config", "thresholds", "classes").
        error: the error type to raise (`LabelError` for classes files).
        hint: a sentence added when the file does not exist, saying what to do.

    Raises:
        error: "{path}: no such {what} file.", "cannot read the {what} file (...)" or
            "not valid YAML (...)", always on one line.
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{source}: no such {what} file.{' ' + hint if hint else ''}") from None
    except (OSError, UnicodeDecodeError) as failure:
        reason = " ".join(str(failure).split())
        raise error(f"{source}: cannot read the {what} file ({reason}).") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as failure:
        reason = " ".join(str(failure).split())
        raise error(f"{source}: not valid YAML ({reason}).") from None
