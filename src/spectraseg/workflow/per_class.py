"""`train_per_class`: one binary model per class, merged into one model by an ensemble file.

```
RUN/
  config.yaml       the shared config every class model trains with
  classes/<name>/   one run folder per class (its config.yaml says `data.classes: [<name>]`)
  ensemble.yaml     the members classes/<name>: what `spectraseg predict RUN ...` reads
```
Each class model learns its class against everything else (`data.classes: [<name>]`), so its
class-balanced sampling balances that class with the rest, and its threshold is tuned for that
class alone. The ensemble file merges the members into one model card with every class
(`predict/ensemble.py`), so prediction, vectorizing and evaluation take the folder like any run
folder. It is written last: a folder without it is unfinished, and `resume` continues each class
from its `last.pt` and trains the classes not yet started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from spectraseg.config import Config
from spectraseg.data.catalog import data_classes, find_scenes
from spectraseg.errors import CheckpointError, ConfigError, OutputExistsError
from spectraseg.io.atomic import write_text_atomic
from spectraseg.io.lock import LOCK_NAME, folder_lock
from spectraseg.models.registry import model_names
from spectraseg.predict.ensemble import ENSEMBLE_FILE
from spectraseg.train.fit import EpochCallback, FitResult
from spectraseg.train.run_folder import RunFolder
from spectraseg.workflow.training import train_model

__all__ = ["CLASSES_DIR", "PerClassResult", "class_folders", "per_class_names", "train_per_class"]

log = logging.getLogger(__name__)

CLASSES_DIR = "classes"
CONFIG_FILE = "config.yaml"


@dataclass(frozen=True)
class PerClassResult:
    """Each class's training outcome and run folder, and the ensemble file merging them."""

    results: dict[str, FitResult]
    runs: dict[str, Path]
    ensemble: Path


def per_class_names(config: Config, data_dir: str | os.PathLike[str]) -> tuple[str, ...]:
    """The classes to train a model for: `data.classes`, or every class of the data folder."""
    if config.data.classes:
        return config.data.classes
    root = Path(data_dir)
    labels = config.data.labels
    return data_classes(root, find_scenes(root, labels), labels).names


def class_folders(names: Sequence[str]) -> list[str]:
    """A folder name per class: the name itself when it is a plain file name, else the name
    with other characters replaced by '_' (and a number when two would clash).

    Example:
        >>> class_folders(["building", "Large vehicle", "Large/vehicle"])
        ['building', 'Large_vehicle', 'Large_vehicle-2']
    """
    folders: list[str] = []
    for name in names:
        plain = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).lstrip(".") or "class"
        folder, count = plain, 1
        while folder in folders:
            count += 1
            folder = f"{plain}-{count}"
        folders.append(folder)
    return folders


def _check_config(config: Config) -> None:
    if config.model.network_head() == "softmax":
        where = "model.head: softmax"
        if config.model.head is None:
            where = f"model.{config.model.name.replace('-', '_')}.head: softmax"
        raise ConfigError(
            f"--per-class trains one binary model per class, which needs a sigmoid head, and "
            f"the config says {where}; set model.head: sigmoid (it wins over every section's)."
        )


def _prepare(out: Path, *, resume: bool, overwrite: bool) -> None:
    """Check that `out` may be used (as `RunFolder.prepare` does for one run) and remove the
    ensemble file, so an interrupted run never looks finished."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder. Choose another --out.")
    if resume:
        if not (out / CONFIG_FILE).is_file():
            raise CheckpointError(
                f"{out}: nothing to resume (no {CONFIG_FILE}). Drop --resume to start a run."
            )
    elif not overwrite and any(
        entry.name != LOCK_NAME and not entry.name.endswith(".partial") for entry in out.iterdir()
    ):
        raise OutputExistsError(
            f"{out}: run folder is not empty. Pass --resume to continue the run or "
            "--overwrite to start it over."
        )
    with contextlib.suppress(FileNotFoundError):
        (out / ENSEMBLE_FILE).unlink()


def _class_config(config: Config, name: str) -> Config:
    return config.model_copy(update={"data": config.data.model_copy(update={"classes": (name,)})})


def train_per_class(
    config: Config,
    *,
    data_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    overwrite: bool = False,
    device: torch.device | None = None,
    progress: bool = False,
    on_epoch_end: EpochCallback | None = None,
) -> PerClassResult:
    """Train `config` once per class into `out_dir/classes/<name>/` and write
    `out_dir/ensemble.yaml` merging them (see the module docstring).

    Args:
        resume: continue each network's class model from its `last.pt` (classes without one,
            and baselines, train from the start); `config` should be `out_dir/config.yaml`.
        overwrite: start over in a non-empty `out_dir`.
        on_epoch_end: passed to each class's training.

    Raises:
        ConfigError: a softmax head (one class needs a sigmoid), or an unknown class name.
        OutputExistsError: `out_dir` is not empty and neither `resume` nor `overwrite` is set.
    """
    _check_config(config)
    out = Path(out_dir)
    names = per_class_names(config, data_dir)
    folders = class_folders(names)
    with folder_lock(out):
        _prepare(out, resume=resume, overwrite=overwrite)
        if not resume:
            write_text_atomic(out / CONFIG_FILE, config.to_yaml())
        results: dict[str, FitResult] = {}
        runs: dict[str, Path] = {}
        for position, (name, folder) in enumerate(zip(names, folders, strict=True), start=1):
            run = RunFolder(out / CLASSES_DIR / folder)
            log.info("class %d of %d: %s into %s", position, len(names), name, run.path)
            runs[name] = run.path
            results[name] = train_model(
                _class_config(config, name),
                data_dir=data_dir,
                out_dir=run.path,
                resume=resume and run.last.is_file() and config.model.name in model_names(),
                overwrite=True,
                device=device,
                progress=progress,
                on_epoch_end=on_epoch_end,
            )
            log.info("class %s: validation Jaccard %.3f", name, results[name].best_score)
        ensemble = out / ENSEMBLE_FILE
        write_text_atomic(ensemble, _ensemble_text(names, folders))
    return PerClassResult(results=results, runs=runs, ensemble=ensemble)


def _ensemble_text(names: Sequence[str], folders: Sequence[str]) -> str:
    members = [{"path": f"{CLASSES_DIR}/{folder}", "weight": 1.0} for folder in folders]
    header = (
        "# One binary model per class (spectraseg train --per-class), merged into one "
        "prediction:\n# spectraseg predict THIS_FOLDER INPUT... --out DIR\n"
        f"# classes: {', '.join(names)}\n"
    )
    return header + yaml.safe_dump({"members": members}, sort_keys=False)
