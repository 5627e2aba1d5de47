"""`--suggest-space`: a space narrowed around the top trials, with the edges to widen named.

For each range the new bounds span the values of the top trials (the best quarter, at least
three) plus a quarter of that span on each side, inside the old range. When the best trial's
value sits at an edge of the old range (within 5 % of its span), the optimum may lie beyond it:
that edge is pushed out by half the old span instead, as far as the config accepts, and the
parameter is named. Choices keep those the top trials used.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import yaml

from spectraseg.config import Config
from spectraseg.errors import ConfigError
from spectraseg.io.atomic import write_text_atomic
from spectraseg.search.space import Parameter, SearchSpace, parse_space

__all__ = ["SUGGESTED_FILE", "suggest_space", "write_suggested_space"]

log = logging.getLogger(__name__)

SUGGESTED_FILE = "suggested-space.yaml"
EDGE_SHARE = 0.05
MARGIN_SHARE = 0.25
WIDEN_SHARE = 0.5


def _top(trials: Sequence[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    done = [
        t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
    ]
    done.sort(key=lambda t: float(t.value or 0.0), reverse=True)
    return done[: max(3, math.ceil(len(done) / 4))]


def _to_axis(value: float, log_scale: bool) -> float:
    return math.log(value) if log_scale else value


def _from_axis(value: float, log_scale: bool) -> float:
    return math.exp(value) if log_scale else value


def _narrowed(parameter: Parameter, values: list[float], best: float) -> tuple[dict[str, Any], str]:
    """The new range of one numeric parameter and which edge to widen ("", "low", "high")."""
    kind, log_scale = parameter.kind(), parameter.log
    old_low, old_high = float(parameter.low or 0), float(parameter.high or 0)
    a_low, a_high = _to_axis(old_low, log_scale), _to_axis(old_high, log_scale)
    span = a_high - a_low
    top_low = min(_to_axis(v, log_scale) for v in values)
    top_high = max(_to_axis(v, log_scale) for v in values)
    margin = max(MARGIN_SHARE * (top_high - top_low), 0.1 * span)
    new_low, new_high = max(a_low, top_low - margin), min(a_high, top_high + margin)
    position = _to_axis(best, log_scale)
    edge = ""
    if position - a_low <= EDGE_SHARE * span:
        edge, new_low = "low", a_low - WIDEN_SHARE * span
    elif a_high - position <= EDGE_SHARE * span:
        edge, new_high = "high", a_high + WIDEN_SHARE * span
    low, high = _from_axis(new_low, log_scale), _from_axis(new_high, log_scale)
    if not log_scale and old_low >= 0:
        low = max(low, 0.0)  # weights, shares and rates that start at 0 stay non-negative
    described = parameter.describe()
    if kind == "int":
        step = int(parameter.step or 1)
        low_i = max(1 if log_scale else -(10**9), math.floor(low))
        high_i = math.ceil(high)
        if parameter.step is not None:
            low_i = int(old_low) + (low_i - int(old_low)) // step * step
            high_i = low_i + max(step, (high_i - low_i) // step * step)
        described.update(low=low_i, high=max(high_i, low_i + step))
    else:
        described.update(low=float(low), high=float(high))
    return described, edge


def suggest_space(
    space: SearchSpace, trials: Sequence[optuna.trial.FrozenTrial], base: Config
) -> tuple[SearchSpace, list[str]]:
    """The narrowed space and the parameters whose best values sat at a range edge."""
    top = _top(trials)
    if not top:
        raise ConfigError("the study has no completed trial yet; run more trials first.")
    document = yaml.safe_load(space.to_yaml())
    edges: list[str] = []
    fallback = dict(document["parameters"])
    for name, parameter in space.parameters.items():
        values = [t.params[name] for t in top if name in t.params]
        if not values:
            continue
        if parameter.kind() == "categorical":
            used = [c for c in parameter.choices or () if c in values]
            document["parameters"][name] = {**parameter.describe(), "choices": used}
            continue
        best = top[0].params.get(name, values[0])
        described, edge = _narrowed(parameter, [float(v) for v in values], float(best))
        document["parameters"][name] = described
        if edge:
            edges.append(f"{name} ({edge})")
    # A widened edge the config rejects (dropout 1.0, depth 7) goes back to the old edge.
    for _ in range(len(space.parameters) + 1):
        try:
            return parse_space(document, "the suggested space", base), edges
        except ConfigError as error:
            culprit = next(
                (n for n in document["parameters"] if f"parameters.{n}:" in str(error)), None
            )
            if culprit is None:
                raise
            document["parameters"][culprit] = fallback[culprit]
            edges = [e for e in edges if not e.startswith(f"{culprit} (")]
    raise ConfigError("could not build a valid suggested space")  # pragma: no cover


def write_suggested_space(
    out_dir: Path, *, study: str | None = None, storage_url: str | None = None
) -> Path:
    """Write DIR/suggested-space.yaml for the study; rerun `search --space` with it to refine."""
    from spectraseg.search.show import open_existing_study
    from spectraseg.search.study import study_base, study_space

    found = open_existing_study(out_dir, study, storage_url)
    suggested, edges = suggest_space(
        study_space(found), found.get_trials(deepcopy=False), study_base(found)
    )
    header = f"# Narrowed around the top trials of study {found.study_name}.\n"
    if edges:
        header += f"# Best values at a range edge, widened: {', '.join(edges)}.\n"
        log.warning("best values at a range edge (widen those): %s", ", ".join(edges))
    path = out_dir / SUGGESTED_FILE
    write_text_atomic(path, header + suggested.to_yaml())
    log.info("%s: refine with spectraseg search --space %s --out %s ...", path, path, out_dir)
    return path
