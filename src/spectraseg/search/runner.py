"""`run_search`: check the request, open or refine the study, and run its workers.

```
DIR/
  study.journal   every study of this folder (unless --storage names a database)
  best.yaml       the best trial's config, ready for `spectraseg train --config`
  trials/<study>-<number>/   each trial's run folder (config.yaml, best.pt, history.csv, ...)
  per-class/      with --per-class: the best config trained once per class (classes/<name>/,
                  ensemble.yaml; `workflow/per_class.py`), the DSTL workflow's last step
```
Rerunning with the same DIR continues the newest study (no --overwrite needed); a `--space`
that differs from the study's starts a refined study seeded with the old trials (`refine.py`).
A new study's first trial is the base config itself, when it lies inside the space
(`first_trial.py`), so the search never ends below the config it started from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch

from spectraseg.config import Config, load_config
from spectraseg.data.catalog import find_scenes
from spectraseg.data.split import largest_patch_size
from spectraseg.errors import ConfigError, DataError
from spectraseg.io.rasters import open_stack
from spectraseg.search.defaults import default_space
from spectraseg.search.first_trial import enqueue_base
from spectraseg.search.refine import refined_name, seed_study
from spectraseg.search.space import SearchSpace, load_space
from spectraseg.search.storage import open_storage, study_names
from spectraseg.search.study import (
    FINISHED,
    SearchJob,
    create_study,
    settled_study,
    study_base,
    study_space,
    write_best,
)
from spectraseg.search.trial import TrialBudget
from spectraseg.search.workers import run_workers
from spectraseg.workflow.per_class import train_per_class

__all__ = [
    "DEFAULT_STUDY",
    "PER_CLASS_DIR",
    "SearchOptions",
    "SearchOutcome",
    "prepare_study",
    "run_search",
]

log = logging.getLogger(__name__)

DEFAULT_STUDY = "search"
PER_CLASS_DIR = "per-class"


@dataclass(frozen=True)
class SearchOptions:
    """The request, as `spectraseg search` takes it."""

    data_dir: Path
    out_dir: Path
    config_path: Path | None = None
    space_path: Path | None = None
    trials: int | None = None
    """Run this many more finished trials."""
    total_trials: int | None = None
    """Stop every worker once the study holds this many finished trials."""
    workers: int = 1
    storage_url: str | None = None
    study: str | None = None
    max_minutes_per_trial: float | None = None
    device: str = "cpu"
    seed: int | None = None
    per_class: bool = False
    """After the trials, train the best config once per class into `DIR/per-class/`."""


@dataclass(frozen=True)
class SearchOutcome:
    study_name: str
    finished: int
    best_value: float | None
    best_path: Path | None
    exit_codes: tuple[int, ...]
    per_class: Path | None = None
    """The per-class models' ensemble file, when asked for."""


def _check_counts(options: SearchOptions) -> None:
    if (options.trials is None) == (options.total_trials is None):
        raise ConfigError(
            "give exactly one of --trials N (N more trials) and --total-trials N (until the "
            "study holds N)."
        )
    count = options.trials if options.trials is not None else options.total_trials
    if count is not None and count < 1:
        raise ConfigError(f"--trials/--total-trials {count}: give at least 1.")
    if options.workers < 1:
        raise ConfigError(f"--workers {options.workers}: give at least 1.")
    if options.max_minutes_per_trial is not None and options.max_minutes_per_trial <= 0:
        raise ConfigError(f"--max-minutes-per-trial {options.max_minutes_per_trial}: give > 0.")


def largest_patch(data_dir: Path, base: Config) -> int:
    """The largest training patch the data folder's scenes and split can hold."""
    sources = [s for s in find_scenes(data_dir, base.data.labels) if s.has_labels]
    if not sources:
        raise DataError(f"{data_dir}: no labelled scene to search on.")
    shapes = []
    for source in sources:
        with open_stack(
            source.images,
            resolution=base.data.resolution,
            sensor=source.sensor,
            reference=source.reference,
        ) as stack:
            shapes.append(stack.shape)
    return largest_patch_size(shapes, base.data.split)


def _check_patch(space: SearchSpace, largest: int, source: str) -> None:
    parameter = space.parameters.get("data.patch_size")
    if parameter is None:
        return
    smallest = min(parameter.choices) if parameter.choices else parameter.low
    if isinstance(smallest, int | float) and smallest > largest:
        raise ConfigError(
            f"{source}: parameters.data.patch_size: every value is larger than the {largest} px "
            f"patches the scenes hold; lower the range to at most {largest}."
        )


def prepare_study(options: SearchOptions) -> tuple[optuna.Study, int]:
    """The study the workers join (continued, new or refined) and the finished-trial target."""
    storage = open_storage(options.out_dir, options.storage_url)
    names = study_names(storage)
    current = options.study or (names[-1] if names else DEFAULT_STUDY)
    if current in names:
        study = settled_study(storage, current)
        base = study_base(study)
        if options.config_path is not None:
            given = load_config(options.config_path)
            if given.model_dump() != base.model_dump():
                raise ConfigError(
                    f"{options.config_path}: study {current!r} in {options.out_dir} was started "
                    "with another config; pass --study NEW_NAME (or another --out) to search "
                    "with this one."
                )
        if options.space_path is not None:
            space = load_space(options.space_path, base)
            _check_patch(space, largest_patch(options.data_dir, base), str(options.space_path))
            if space.to_yaml() != study_space(study).to_yaml():
                name = refined_name(current, names)
                refined, created = create_study(
                    storage,
                    name,
                    space=space,
                    base=base,
                    data_dir=options.data_dir,
                    parent=current,
                )
                if created:
                    seed_study(study, refined, space)
                    log.info("space changed: refined study %s (parent %s)", name, current)
                study = refined
    else:
        base = load_config(options.config_path)
        largest = largest_patch(options.data_dir, base)
        if options.space_path is not None:
            space = load_space(options.space_path, base)
            _check_patch(space, largest, str(options.space_path))
        else:
            space = default_space(largest, base)
        study, created = create_study(
            storage, current, space=space, base=base, data_dir=options.data_dir
        )
        if created:
            log.info("new study %s in %s", current, options.storage_url or options.out_dir)
            enqueue_base(study, space, base)
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    target = (
        options.total_trials
        if options.total_trials is not None
        else finished + (options.trials or 0)
    )
    return study, target


def run_search(options: SearchOptions) -> SearchOutcome:
    """Run the search a `spectraseg search` command asks for.

    Raises:
        ConfigError: bad counts, space, config or storage (one line; nothing is lost).
    """
    _check_counts(options)
    study, target = prepare_study(options)
    job = SearchJob(
        data_dir=options.data_dir,
        out_dir=options.out_dir,
        storage_url=options.storage_url,
        study_name=study.study_name,
        target_finished=target,
        budget=TrialBudget(max_minutes=options.max_minutes_per_trial, device=options.device),
        seed=options.seed,
    )
    codes = run_workers(job, options.workers)
    best_path = write_best(study, options.out_dir)
    finished = len(study.get_trials(deepcopy=False, states=FINISHED))
    try:
        best_value: float | None = study.best_value
    except ValueError:
        best_value = None
    ensemble = None
    if options.per_class and best_path is not None:
        ensemble = _train_best_per_class(options, best_path, job.budget)
    elif options.per_class:
        log.warning("no finished trial yet: no per-class models to train")
    return SearchOutcome(
        study.study_name, finished, best_value, best_path, tuple(codes), per_class=ensemble
    )


def _train_best_per_class(options: SearchOptions, best: Path, budget: TrialBudget) -> Path:
    """The best config trained once per class, each under the trials' budget, into
    `DIR/per-class/` (started over after each search: the best config may have changed)."""
    config = load_config(best, budget.overrides())
    out = options.out_dir / PER_CLASS_DIR
    log.info("training %s once per class into %s", best, out)
    result = train_per_class(
        config,
        data_dir=options.data_dir,
        out_dir=out,
        overwrite=True,
        device=torch.device(options.device),
    )
    return result.ensemble
