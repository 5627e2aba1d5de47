"""The search space: which config keys a search varies and over which values, from YAML.

```yaml
pruner: median                  # median | hyperband | none
prune_after_epochs: 3           # no trial is pruned before it has validated this many epochs
score_epochs: 3                 # a trial scores the mean of its this-many best epochs
heartbeat_seconds: 30           # how often a running trial says it is alive
grace_seconds: 120              # silence after which a trial counts as killed and is retried
parameters:                     # tried in this order; a name is a config key (`--set` style)
  train.learning_rate: {low: 1.0e-4, high: 1.0e-2, log: true}
  model.unet.depth: {low: 3, high: 5}               # ints when low and high are ints
  train.optimizer: {choices: [adamw, sgd]}
  dropout: {choices: [false, true]}                 # a switch: not a config key, only in `when`
  model.unet.dropout: {low: 0.05, high: 0.5, when: {dropout: true}}
```
A parameter with `when` is only suggested (and only written into the trial's config) when the
named earlier parameters took those values: Optuna's multivariate TPE with `group=True` models
such conditional spaces. Everything is checked when the file loads, so a typo costs no trial.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import optuna
import yaml
from pydantic import Field, ValidationError

from spectraseg.config import Config
from spectraseg.errors import ConfigError, did_you_mean
from spectraseg.io.yaml_file import read_yaml
from spectraseg.settings import Settings

__all__ = [
    "Parameter",
    "SearchSpace",
    "config_keys",
    "load_space",
    "parse_space",
    "under_mapping",
]

Value = bool | int | float | str


class Parameter(Settings):
    """One dimension: a float or int range, or a list of choices, maybe conditional."""

    type: Literal["float", "int", "categorical"] | None = None
    """Default: categorical with `choices`, int when `low` and `high` are ints, else float."""
    low: float | None = None
    high: float | None = None
    log: bool = False
    """Sample uniformly in log space (learning rates, filter counts)."""
    step: float | None = Field(default=None, gt=0)
    choices: tuple[Value, ...] | None = None
    when: dict[str, Value | tuple[Value, ...]] = Field(default_factory=dict)
    """Conditions on earlier parameters: `{dropout: true}` or `{model.name: [unet]}`."""

    def kind(self) -> Literal["float", "int", "categorical"]:
        """`type`, which `parse_space` fills in from the values when the file leaves it out."""
        if self.type is not None:
            return self.type
        return "categorical" if self.choices is not None else "float"

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> Any:
        kind = self.kind()
        if kind == "categorical":
            return trial.suggest_categorical(name, list(self.choices or ()))
        low, high = float(self.low or 0), float(self.high or 0)
        if kind == "int":
            return trial.suggest_int(
                name, int(low), int(high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(name, low, high, step=self.step, log=self.log)

    def distribution(self) -> optuna.distributions.BaseDistribution:
        kind = self.kind()
        if kind == "categorical":
            return optuna.distributions.CategoricalDistribution(list(self.choices or ()))
        low, high = float(self.low or 0), float(self.high or 0)
        if kind == "int":
            step = int(self.step or 1)
            return optuna.distributions.IntDistribution(
                int(low), int(high), log=self.log, step=step
            )
        return optuna.distributions.FloatDistribution(low, high, log=self.log, step=self.step)

    def describe(self) -> dict[str, Any]:
        """The YAML form, without defaults: what `SearchSpace.to_yaml` writes."""
        kind = self.kind()
        out: dict[str, Any] = {}
        if kind == "categorical":
            out["choices"] = list(self.choices or ())
        else:
            number = int if kind == "int" else float
            out["low"], out["high"] = number(self.low or 0), number(self.high or 0)
            if self.log:
                out["log"] = True
            if self.step is not None:
                out["step"] = number(self.step)
            if kind == "float" and float(out["low"]).is_integer():
                out["type"] = "float"
        if self.when:
            out["when"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.when.items()}
        return out


class SearchSpace(Settings):
    """A validated space, the pruner and the heartbeat timing of a search."""

    parameters: dict[str, Parameter] = Field(min_length=1)
    pruner: Literal["median", "hyperband", "none"] = "median"
    prune_after_epochs: int = Field(default=3, ge=1)
    """Epochs every trial trains before the pruner may stop it. Early epochs rank configs by
    how fast they start, not where they end: a large batch or a small learning rate starts
    slowly and a one-epoch verdict prunes it (docs/benchmarks.md, "Does the search pay?")."""
    score_epochs: int = Field(default=3, ge=1)
    """A trial's score is the mean validation Jaccard of its this-many best epochs (of all its
    epochs when it has fewer); 1 is the best epoch's alone, the score of its `best.pt`. A short
    run's validation curve jumps by several hundredths from one epoch to the next, so the single
    best epoch ranks configs by their luckiest draw as much as by their quality."""
    heartbeat_seconds: float = Field(default=30.0, gt=0)
    grace_seconds: float = Field(default=120.0, gt=0)

    def switches(self) -> set[str]:
        """Parameters that only steer `when` conditions and set no config key."""
        return {
            name
            for name in self.parameters
            if name not in config_keys() and not under_mapping(name)
        }

    def is_active(self, name: str, params: Mapping[str, Any]) -> bool:
        """Whether `name` applies given the values of the parameters before it."""
        for other, wanted in self.parameters[name].when.items():
            allowed = wanted if isinstance(wanted, tuple) else (wanted,)
            if other not in params or params[other] not in allowed:
                return False
        return True

    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """Values for the active parameters, in declaration order."""
        params: dict[str, Any] = {}
        for name, parameter in self.parameters.items():
            if self.is_active(name, params):
                params[name] = parameter.suggest(trial, name)
        return params

    def fit(self, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """The active parameters taken from `values` if every one is there and in range."""
        params: dict[str, Any] = {}
        for name, parameter in self.parameters.items():
            if not self.is_active(name, params):
                continue
            if name not in values:
                return None
            value = values[name]
            distribution = parameter.distribution()
            try:
                internal = distribution.to_internal_repr(value)
            except (ValueError, TypeError):
                return None
            if not distribution._contains(internal):
                return None
            params[name] = value
        return params

    def distributions(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return {name: self.parameters[name].distribution() for name in params}

    def to_yaml(self) -> str:
        document = {
            "pruner": self.pruner,
            "prune_after_epochs": self.prune_after_epochs,
            "score_epochs": self.score_epochs,
            "heartbeat_seconds": self.heartbeat_seconds,
            "grace_seconds": self.grace_seconds,
            "parameters": {name: p.describe() for name, p in self.parameters.items()},
        }
        return yaml.safe_dump(document, sort_keys=False)


def _leaf_keys(model: type[Settings], prefix: str) -> list[str]:
    keys: list[str] = []
    for name, field in model.model_fields.items():
        section = _settings_of(field.annotation)
        dotted = f"{prefix}{name}"
        if section is not None:
            keys.extend(_leaf_keys(section, dotted + "."))
        else:
            keys.append(dotted)
    return keys


def _settings_of(annotation: Any) -> type[Settings] | None:
    if isinstance(annotation, type) and issubclass(annotation, Settings):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        found = [_settings_of(a) for a in typing.get_args(annotation)]
        classes = [c for c in found if c is not None]
        return classes[0] if len(classes) == 1 else None
    return None


def config_keys() -> tuple[str, ...]:
    """Every settable dotted key of the run config (`train.learning_rate`, ...)."""
    return tuple(_leaf_keys(Config, ""))


def under_mapping(name: str) -> bool:
    """`loss.terms.dice`: a key inside a plain mapping field, which takes any sub-key."""
    mappings = [k for k in config_keys() if typing.get_origin(_annotation(k)) is dict]
    return any(name.startswith(k + ".") and name.count(".") == k.count(".") + 1 for k in mappings)


def _annotation(key: str) -> Any:
    model: Any = Config
    annotation: Any = None
    for part in key.split("."):
        annotation = model.model_fields[part].annotation
        model = _settings_of(annotation)
    return annotation


def _check(source: str, name: str, parameter: Parameter, earlier: Sequence[str]) -> None:
    where = f"{source}: parameters.{name}"
    kind = parameter.kind()
    if kind == "categorical":
        if not parameter.choices:
            raise ConfigError(f"{where}: give at least one value in 'choices'.")
    else:
        if parameter.low is None or parameter.high is None:
            raise ConfigError(f"{where}: give 'low' and 'high' (or 'choices').")
        if parameter.low > parameter.high:
            raise ConfigError(
                f"{where}: the range is inverted (low {parameter.low} > high {parameter.high}); "
                "swap them."
            )
        if parameter.low == parameter.high:
            raise ConfigError(
                f"{where}: the range is empty (low = high = {parameter.low}); widen it or set "
                "the value in the config instead."
            )
        if parameter.log and parameter.low <= 0:
            raise ConfigError(f"{where}: a log range needs low > 0, got {parameter.low}.")
        if parameter.log and parameter.step is not None and kind == "float":
            raise ConfigError(f"{where}: 'step' and 'log' cannot be combined; drop one.")
    for other in parameter.when:
        if other not in earlier:
            hint = did_you_mean(other, list(earlier)) if earlier else ""
            raise ConfigError(
                f"{where}: 'when' names {other!r}, which is not a parameter declared before it"
                f"{hint}."
            )


def _check_names(source: str, space: SearchSpace) -> None:
    known = config_keys()
    used_in_when = {other for p in space.parameters.values() for other in p.when}
    for name in space.parameters:
        if name in known or under_mapping(name) or name in used_in_when:
            continue
        raise ConfigError(
            f"{source}: parameters.{name}: not a config key{did_you_mean(name, known)}; a switch "
            "that sets no key must be named in another parameter's 'when'."
        )


def _check_values(source: str, space: SearchSpace, base: Config) -> None:
    """Each range's ends and each choice must be a value the config accepts."""
    from spectraseg.config import load_config

    switches = space.switches()
    for name, parameter in space.parameters.items():
        if name in switches:
            continue
        kind = parameter.kind()
        values: Sequence[Any] = (
            parameter.choices or () if kind == "categorical" else (parameter.low, parameter.high)
        )
        for value in values:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            if kind == "int":
                text = str(int(float(text)))
            try:
                load_config(None, [f"{name}={text}"], base=base)
            except ConfigError as error:
                reason = str(error).split(": ", 1)[-1]
                raise ConfigError(
                    f"{source}: parameters.{name}: the config does not accept {value!r} ({reason})"
                ) from None


def parse_space(document: Any, source: str, base: Config | None = None) -> SearchSpace:
    """A validated space from a parsed YAML document; `source` names it in errors."""
    if not isinstance(document, Mapping) or "parameters" not in document:
        raise ConfigError(f"{source}: expected a mapping with 'parameters: {{name: {{...}}}}'.")
    raw_parameters = document["parameters"]
    if not isinstance(raw_parameters, Mapping) or not raw_parameters:
        raise ConfigError(f"{source}: 'parameters' must map parameter names to ranges.")
    document = {
        **document,
        "parameters": {str(name): _with_type(raw) for name, raw in raw_parameters.items()},
    }
    try:
        space = SearchSpace.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"] if "[" not in str(part))
        extra = (
            did_you_mean(str(first["loc"][-1]), _FIELDS)
            if first["type"] == "extra_forbidden"
            else ""
        )
        raise ConfigError(f"{source}: {where}: {first['msg']}{extra}.") from None
    earlier: list[str] = []
    for name, parameter in space.parameters.items():
        _check(source, name, parameter, earlier)
        earlier.append(name)
    _check_names(source, space)
    _check_values(source, space, base or Config())
    return space


_FIELDS = (*Parameter.model_fields, *SearchSpace.model_fields)


def _with_type(raw: Any) -> Any:
    """The parameter with its `type` spelled out: 3 and 3.0 both load as floats otherwise."""
    if not isinstance(raw, Mapping) or raw.get("type") is not None:
        return raw
    if raw.get("choices") is not None:
        return {**raw, "type": "categorical"}
    ends = [raw.get("low"), raw.get("high")]
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in ends)
    return {**raw, "type": "int" if ints else "float"}


def load_space(path: str | os.PathLike[str], base: Config | None = None) -> SearchSpace:
    """Read and validate a space file.

    Raises:
        ConfigError: one line naming the file, the parameter and what is wrong.
    """
    source = Path(path)
    document = read_yaml(source, "search-space")
    return parse_space(document, str(source), base)
