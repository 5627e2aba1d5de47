"""One trial: the suggested values laid over the base config, trained the normal way.

A trial trains with `train_model` (same data preparation, split and metrics as `spectraseg
train`) into `DIR/trials/<study>-<number>/`, under the per-trial time budget, and reports the
validation mean Jaccard of every epoch to the pruner; its score is the mean of its
`space.score_epochs` best epochs (`trial_score`). While it runs, a thread writes a heartbeat
into the trial every `heartbeat_seconds`; a trial whose heartbeat is older than `grace_seconds`
belongs to a killed worker (`study.fail_stale_trials`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

from spectraseg.config import Config, load_config
from spectraseg.models.registry import model_names, size_multiple
from spectraseg.search.space import SearchSpace
from spectraseg.workflow.training import train_model

__all__ = [
    "HEARTBEAT_ATTR",
    "TrialBudget",
    "run_trial",
    "trial_config",
    "trial_folder",
    "trial_score",
]

log = logging.getLogger(__name__)

HEARTBEAT_ATTR = "heartbeat"
"""System attribute holding the time (seconds since the epoch) a trial last said it was alive."""


@dataclass(frozen=True)
class TrialBudget:
    """What a worker adds to each trial's config and does not put in `best.yaml`."""

    max_minutes: float | None = None
    threads: int | None = None
    loader_workers: int | None = None
    device: str = "cpu"

    def overrides(self) -> list[str]:
        lines = []
        if self.max_minutes is not None:
            lines.append(f"train.max_minutes={self.max_minutes}")
        if self.threads is not None:
            lines.append(f"train.threads={self.threads}")
        if self.loader_workers is not None:
            lines.append(f"train.num_workers={self.loader_workers}")
        return lines


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def trial_config(base: Config, space: SearchSpace, params: Mapping[str, Any]) -> Config:
    """`base` with the trial's values set: what `best.yaml` holds when this trial is the best.

    The patch side is rounded down to a multiple of the network's size multiple (2**depth for
    a U-Net, at least that), so a space may vary both freely.
    """
    switches = space.switches()
    overrides = [f"{key}={_text(value)}" for key, value in params.items() if key not in switches]
    config = load_config(None, overrides, base=base)
    if config.model.name not in model_names():
        return config
    multiple = size_multiple(config.model.name, config.model.chosen())
    patch = config.data.patch_size
    fitted = max(multiple, patch // multiple * multiple)
    if fitted != patch:
        config = load_config(None, [f"data.patch_size={fitted}"], base=config)
    return config


def trial_score(history: Sequence[Mapping[str, Any]], epochs: int) -> float:
    """The mean validation mean Jaccard of the `epochs` best rows of `history` (of all rows
    when there are fewer); an epoch that scored nothing (NaN) counts as 0."""
    scores = sorted(_or_zero(float(row["val_jaccard"])) for row in history)
    best = scores[-epochs:]
    return sum(best) / len(best) if best else 0.0


def _or_zero(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def trial_folder(out_dir: Path, study_name: str, number: int) -> Path:
    return out_dir / "trials" / f"{study_name}-{number:04d}"


@contextmanager
def _heartbeat(
    storage: optuna.storages.BaseStorage, trial_id: int, interval_s: float
) -> Iterator[None]:
    """Record a heartbeat now and every `interval_s` until the block ends."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
            except (RuntimeError, ValueError):  # the trial finished meanwhile
                return
            if stop.wait(interval_s):
                return

    storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
    thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def run_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    *,
    space: SearchSpace,
    base: Config,
    data_dir: Path,
    out_dir: Path,
    budget: TrialBudget,
) -> optuna.trial.TrialState:
    """Train one trial and tell the study how it ended (complete, pruned or failed)."""
    with _heartbeat(study._storage, trial._trial_id, space.heartbeat_seconds):
        return _train_and_tell(study, trial, space, base, data_dir, out_dir, budget)


def _train_and_tell(
    study: optuna.Study,
    trial: optuna.Trial,
    space: SearchSpace,
    base: Config,
    data_dir: Path,
    out_dir: Path,
    budget: TrialBudget,
) -> optuna.trial.TrialState:
    folder = trial_folder(out_dir, study.study_name, trial.number)
    trial.set_user_attr("run", str(folder))
    try:
        params = space.suggest(trial)
        config = trial_config(base, space, params)
        trial.set_user_attr("config", config.model_dump(mode="json"))
        run_config = load_config(None, budget.overrides(), base=config)

        def report(epoch: int, score: float) -> bool:
            trial.report(score, epoch)
            return trial.should_prune()

        log.info("trial %d: %s", trial.number, _summary(params))
        result = train_model(
            run_config,
            data_dir=data_dir,
            out_dir=folder,
            overwrite=True,
            device=torch.device(budget.device),
            on_epoch_end=report,
        )
    except KeyboardInterrupt:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    except Exception as error:
        # Any failure, a bad combination of values or a bug, costs this trial, not the study.
        message = f"{type(error).__name__}: {' '.join(str(error).split())}"
        trial.set_user_attr("error", message)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        log.warning("trial %d failed: %s", trial.number, message)
        return optuna.trial.TrialState.FAIL
    trial.set_user_attr("best_epoch", result.best_epoch)
    trial.set_user_attr("best_score", result.best_score)
    if result.stopped == "caller":
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        log.info("trial %d pruned after epoch %d", trial.number, result.epochs)
        return optuna.trial.TrialState.PRUNED
    score = trial_score(result.history, space.score_epochs)
    study.tell(trial, score)
    log.info(
        "trial %d: validation mean Jaccard %.4f (the mean of its top %d of %d epochs; "
        "its best epoch %.4f)",
        trial.number,
        score,
        min(space.score_epochs, len(result.history)),
        len(result.history),
        result.best_score,
    )
    return optuna.trial.TrialState.COMPLETE


def _summary(params: Mapping[str, Any]) -> str:
    def shown(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{key}={shown(value)}" for key, value in params.items())
