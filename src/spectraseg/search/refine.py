"""Refining a search: a new study over a changed space, seeded with the old trials that fit.

TPE's multivariate model falls back to random search when a study's space changes under it,
so a narrowed or widened space never goes into the old study. It starts a new study in the same
storage (`<old>-r2`, `<old>-r3`, ...) whose `parent` attribute names the old one (the lineage),
and copies in every finished trial of the old study whose values lie inside the new space, with
its score and per-epoch values, so TPE starts from what is known. The old study is not touched.
A parameter the old trials did not vary is read from the config they trained with.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import optuna

from spectraseg.search.space import SearchSpace

__all__ = ["config_value", "refined_name", "seed_study"]

log = logging.getLogger(__name__)


def refined_name(parent: str, existing: list[str]) -> str:
    """The next free name in a lineage: `search` -> `search-r2` -> `search-r3`.

    Example:
        >>> refined_name("search", ["search"]), refined_name("search-r2", ["search", "search-r2"])
        ('search-r2', 'search-r3')
    """
    root, _, number = parent.rpartition("-r")
    stem, start = (root, int(number) + 1) if root and number.isdigit() else (parent, 2)
    index = start
    while f"{stem}-r{index}" in existing:
        index += 1
    return f"{stem}-r{index}"


def config_value(config: Mapping[str, Any], key: str) -> Any:
    """The value at a dotted key of a config dump, or KeyError."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def _values(trial: optuna.trial.FrozenTrial, space: SearchSpace) -> dict[str, Any]:
    values = dict(trial.params)
    config = trial.user_attrs.get("config", {})
    for name in space.parameters:
        if name not in values:
            with contextlib.suppress(KeyError):
                values[name] = config_value(config, name)
    return values


def seed_study(old: optuna.Study, new: optuna.Study, space: SearchSpace) -> int:
    """Copy the finished trials of `old` that fit `space` into `new`; returns how many."""
    copied = 0
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for trial in old.get_trials(deepcopy=False, states=states):
        params = space.fit(_values(trial, space))
        if params is None:
            continue
        new.add_trial(
            optuna.trial.create_trial(
                state=trial.state,
                value=trial.value,
                params=params,
                distributions=space.distributions(params),
                user_attrs={**trial.user_attrs, "seeded_from": f"{old.study_name}#{trial.number}"},
                intermediate_values=dict(trial.intermediate_values),
            )
        )
        copied += 1
    log.info(
        "study %s: seeded with %d of the finished trials of %s",
        new.study_name,
        copied,
        old.study_name,
    )
    return copied
