"""The base config as a new study's first trial.

A search starts from a config someone already wrote, often one tuned by hand for the data. TPE
spends its first trials at random, so without help the study may never train that config at all
and `best.yaml` could end up worse than the file the search started from. Enqueuing the base
config's own values first makes it trial 0: the study's best is then at least as good on
validation as where it started, and every later trial is measured against it.

The base config fits when every parameter the space makes active has a value in the config,
inside its range. A weight inside a mapping that the config leaves out (`loss.terms.dice` when
the config lists only bce and log_jaccard) counts as 0, which is what training reads it as.
Switches (parameters that set no config key, such as `dropout`) take the choice under which
the most of the config's values are used.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Mapping
from typing import Any

import optuna

from spectraseg.config import Config
from spectraseg.search.refine import config_value
from spectraseg.search.space import SearchSpace, under_mapping

__all__ = ["base_params", "enqueue_base"]

log = logging.getLogger(__name__)


def base_params(space: SearchSpace, base: Config) -> dict[str, Any] | None:
    """The space's values that reproduce `base`, or None when the base lies outside it."""
    dump = base.model_dump(mode="json")
    switches = [name for name in space.parameters if name in space.switches()]
    values = _config_values(space, dump, switches)
    best: dict[str, Any] | None = None
    choices = [space.parameters[name].choices or () for name in switches]
    for combination in itertools.product(*choices):
        params = space.fit({**values, **dict(zip(switches, combination, strict=True))})
        if params is not None and (best is None or len(params) > len(best)):
            best = params
    return best


def _config_values(
    space: SearchSpace, dump: Mapping[str, Any], switches: list[str]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in space.parameters:
        if name in switches:
            continue
        with contextlib.suppress(KeyError):
            values[name] = config_value(dump, name)
            continue
        if under_mapping(name):
            values[name] = 0.0
    return values


def enqueue_base(study: optuna.Study, space: SearchSpace, base: Config) -> bool:
    """Enqueue the base config as the next trial of `study`; False (and a log line saying
    so) when the base config lies outside the space."""
    params = base_params(space, base)
    if params is None:
        log.info(
            "the base config lies outside the search space: the study starts from TPE's "
            "random trials alone"
        )
        return False
    study.enqueue_trial(params, user_attrs={"base_config": True})
    log.info("trial 0 of study %s: the base config itself", study.study_name)
    return True
