"""Loading a run config: the `run:` paths made absolute, one plain config per model."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from spectraseg.config import Config, load_config
from spectraseg.errors import ConfigError

__all__ = ["load_run_config", "model_config", "resolve_run_paths"]


def _resolved(path: Path | None, base: Path) -> Path | None:
    if path is None:
        return None
    expanded = Path(os.path.expanduser(path))
    return expanded if expanded.is_absolute() else (base / expanded).resolve()


def load_run_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> Config:
    """The run config of a file, its `run:` paths made absolute against the file's folder.

    Raises:
        ConfigError: the file, a key or an override is invalid, or no data is named.
    """
    config_path = Path(path)
    config = resolve_run_paths(load_config(config_path, overrides), config_path)
    if config.run.data is None:
        raise ConfigError(
            f"{config_path}: run.data is not set; name the training data folder, "
            "e.g. run: {data: data}."
        )
    return config


def resolve_run_paths(config: Config, config_path: Path) -> Config:
    """`config` with the `run:` section's relative paths taken from `config_path`'s folder."""
    base = config_path.resolve().parent
    run = config.run
    out = _resolved(run.out, base) or (Path.cwd() / "runs" / config_path.stem).resolve()
    resolved = run.model_copy(
        update={
            "out": out,
            "data": _resolved(run.data, base),
            "test": _resolved(run.test, base),
            "inference": tuple(_resolved(p, base) or p for p in run.inference),
            "search": (
                run.search.model_copy(update={"space": _resolved(run.search.space, base)})
                if run.search is not None
                else None
            ),
        }
    )
    return config.model_copy(update={"run": resolved})


def model_config(config: Config, label: str) -> Config:
    """The plain stage config one model trains with: the shared sections and its overrides."""
    entry = config.run.models[label]
    if not entry.set:
        return config
    return load_config(None, entry.set, base=config)
