"""A study: TPE over the space, the worker loop that runs trials, heartbeats and `best.yaml`.

The sampler is Optuna's TPE, multivariate with `group=True` (conditional parameters) and
`constant_liar=True` (parallel workers do not all try the same point). Each study stores its
space and base config as user attributes, so any worker, on any machine, rebuilds the same
objective from the storage alone.

A worker counts the finished (complete or pruned) trials before asking for a new one and stops
once the study holds its target, under a lock shared by the local workers: `--total-trials 6`
with two workers ends with exactly 6 finished trials. A trial whose worker was killed keeps no
heartbeat; after `grace_seconds` any worker marks it failed and enqueues the same values again.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import yaml

from spectraseg.config import Config, load_config
from spectraseg.errors import ConfigError
from spectraseg.io.atomic import write_text_atomic
from spectraseg.search.space import SearchSpace, parse_space
from spectraseg.search.storage import claim_lock, open_storage
from spectraseg.search.trial import HEARTBEAT_ATTR, TrialBudget, run_trial

__all__ = [
    "BEST_FILE",
    "FINISHED",
    "SearchJob",
    "build_pruner",
    "create_study",
    "fail_stale_trials",
    "load_study",
    "run_worker",
    "settled_study",
    "study_base",
    "study_space",
    "write_best",
]

log = logging.getLogger(__name__)

BEST_FILE = "best.yaml"
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
MAX_FAILURES_IN_A_ROW = 5
"""A worker whose trials all crash stops after this many: the space or data is broken."""
_WAIT_S = 1.0
"""How long a worker waits for running trials before it looks again."""


@dataclass(frozen=True)
class SearchJob:
    """What one worker needs: everything else comes from the storage."""

    data_dir: Path
    out_dir: Path
    storage_url: str | None
    study_name: str
    target_finished: int
    """Stop once the study holds this many finished (complete or pruned) trials."""
    budget: TrialBudget = field(default_factory=TrialBudget)
    seed: int | None = None


def build_pruner(space: SearchSpace, base: Config) -> optuna.pruners.BasePruner:
    """The pruner `space` names; none stops a trial before `space.prune_after_epochs`."""
    if space.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=space.prune_after_epochs,
            max_resource=max(space.prune_after_epochs, base.train.epochs),
        )
    if space.pruner == "median":
        # Epochs are reported from 1; Optuna may prune at a step of at least n_warmup_steps.
        return optuna.pruners.MedianPruner(
            n_startup_trials=4, n_warmup_steps=space.prune_after_epochs
        )
    return optuna.pruners.NopPruner()


def _sampler(seed: int | None) -> optuna.samplers.BaseSampler:
    # `group=True` is what makes TPE model conditional parameters; Optuna still calls it
    # experimental and warns on every worker start.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna.samplers.TPESampler(
        multivariate=True, group=True, constant_liar=True, seed=seed, n_startup_trials=8
    )


def study_space(study: optuna.Study) -> SearchSpace:
    return parse_space(yaml.safe_load(study.user_attrs["space"]), f"study {study.study_name}")


def study_base(study: optuna.Study) -> Config:
    return Config.model_validate(study.user_attrs["base_config"])


_CREATED_ATTR = "created"
"""Set last by `create_study`: a study holding it has its space, base config and lineage."""
_JOIN_TIMEOUT_S = 60.0
"""How long a worker waits for a study another worker is creating to hold its attributes."""


def create_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    *,
    space: SearchSpace,
    base: Config,
    data_dir: Path,
    parent: str | None = None,
) -> tuple[optuna.Study, bool]:
    """A new study holding its space, base config, data folder and parent (the lineage).

    Two machines started with the same command at the same moment both find no study and both
    create it; the storage lets one win. The other joins the winner's study once its attributes
    are written (the second value is then False), so the race costs a worker nothing.

    Raises:
        ConfigError: the study another worker created holds another space or base config.
    """
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    except optuna.exceptions.DuplicatedStudyError:
        return _join_created(storage, name, space=space, base=base), False
    study.set_user_attr("space", space.to_yaml())
    study.set_user_attr("base_config", base.model_dump(mode="json"))
    study.set_user_attr("data", str(data_dir))
    study.set_user_attr("parent", parent)
    study.set_user_attr(_CREATED_ATTR, time.strftime("%Y-%m-%dT%H:%M:%S"))
    return study, True


def _join_created(
    storage: optuna.storages.BaseStorage, name: str, *, space: SearchSpace, base: Config
) -> optuna.Study:
    """The study another worker has just created, if it was created with this space and base."""
    study = settled_study(storage, name)
    if study_space(study).to_yaml() != space.to_yaml() or (
        study_base(study).model_dump() != base.model_dump()
    ):
        raise ConfigError(
            f"study {name!r} was created at the same moment by another worker with another "
            "config or space; pass --study NEW_NAME to search with this one."
        )
    log.info("study %s was created by another worker at the same moment: joined it", name)
    return study


def settled_study(storage: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """An existing study once its creator has written its attributes (at most a moment after
    it appears in the storage, when another worker is creating it right now)."""
    deadline = time.monotonic() + _JOIN_TIMEOUT_S
    while True:
        study = optuna.load_study(study_name=name, storage=storage)
        if _CREATED_ATTR in study.user_attrs:
            break
        if time.monotonic() > deadline:
            raise ConfigError(
                f"study {name!r} exists but its creator wrote no space within "
                f"{_JOIN_TIMEOUT_S:.0f} s; pass --study NEW_NAME to start another."
            )
        time.sleep(_WAIT_S / 4)
    return study


def load_study(
    storage: optuna.storages.BaseStorage, name: str, seed: int | None = None
) -> tuple[optuna.Study, SearchSpace, Config]:
    plain = optuna.load_study(study_name=name, storage=storage)
    space, base = study_space(plain), study_base(plain)
    study = optuna.load_study(
        study_name=name, storage=storage, sampler=_sampler(seed), pruner=build_pruner(space, base)
    )
    return study, space, base


def fail_stale_trials(study: optuna.Study, space: SearchSpace) -> list[int]:
    """Mark running trials without a recent heartbeat failed and enqueue their values again.

    Returns the numbers of the trials it failed.
    """
    now = time.time()
    failed = []
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for trial in running:
        beat = trial.system_attrs.get(HEARTBEAT_ATTR)
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        last = float(beat) if beat is not None else started
        if now - last <= space.grace_seconds:
            continue
        storage = study._storage
        try:
            # The reason first: a finished trial takes no more attributes.
            storage.set_trial_user_attr(
                trial._trial_id, "error", f"no heartbeat for {now - last:.0f} s: worker killed"
            )
            changed = storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        except (RuntimeError, ValueError):  # another worker got there first
            continue
        if not changed:
            continue
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": trial.number})
        failed.append(trial.number)
        log.warning("trial %d lost its worker; it is failed and will be retried", trial.number)
    return failed


def _count(study: optuna.Study, states: tuple[optuna.trial.TrialState, ...]) -> int:
    return len(study.get_trials(deepcopy=False, states=states))


def _claim(study: optuna.Study, job: SearchJob) -> optuna.Trial | bool | None:
    """A new trial, None when the study is done, False when others' trials must end first."""
    with claim_lock(job.out_dir):
        finished = _count(study, FINISHED)
        if finished >= job.target_finished:
            return None
        running = _count(study, (optuna.trial.TrialState.RUNNING,))
        if finished + running >= job.target_finished:
            return False
        trial = study.ask()
    # Workers on other machines do not share the lock: the lower trial numbers win.
    ahead = [
        t
        for t in study.get_trials(deepcopy=False)
        if t.number < trial.number and t.state in (*FINISHED, optuna.trial.TrialState.RUNNING)
    ]
    if len(ahead) >= job.target_finished:
        trial.set_user_attr("error", "surplus: the study already had its trials")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return False
    return trial


def run_worker(job: SearchJob) -> int:
    """Run trials until the study holds `job.target_finished` finished ones; returns how many
    this worker ran."""
    storage = open_storage(job.out_dir, job.storage_url)
    study, space, base = load_study(storage, job.study_name, job.seed)
    ran, failures = 0, 0
    while failures < MAX_FAILURES_IN_A_ROW:
        fail_stale_trials(study, space)
        claimed = _claim(study, job)
        if claimed is None:
            return ran
        if claimed is False:
            time.sleep(min(_WAIT_S, space.heartbeat_seconds))
            continue
        assert isinstance(claimed, optuna.Trial)
        state = run_trial(
            study,
            claimed,
            space=space,
            base=base,
            data_dir=job.data_dir,
            out_dir=job.out_dir,
            budget=job.budget,
        )
        ran += 1
        failures = failures + 1 if state == optuna.trial.TrialState.FAIL else 0
        if state == optuna.trial.TrialState.COMPLETE:
            with claim_lock(job.out_dir):
                write_best(study, job.out_dir)
    log.error(
        "%d trials in a row failed; this worker stops (see each trial's error in --show and its "
        "train.log under trials/)",
        MAX_FAILURES_IN_A_ROW,
    )
    return ran


def write_best(study: optuna.Study, out_dir: Path) -> Path | None:
    """Rewrite `DIR/best.yaml` (atomically) from the study's best trial; None before any."""
    try:
        best = study.best_trial
    except ValueError:
        return None
    path = out_dir / BEST_FILE
    config = load_config(base=Config.model_validate(best.user_attrs["config"]))
    header = (
        f"# spectraseg search: study {study.study_name}, trial {best.number}, validation mean "
        f"Jaccard {best.value:.4f} (the mean of its best epochs)\n"
        f"# spectraseg train --data DIR --out RUN --config {BEST_FILE}\n"
    )
    text = header + config.to_yaml()
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        write_text_atomic(path, text)
        log.info("%s: trial %d is the best so far (%.4f)", path, best.number, best.value)
    return path
