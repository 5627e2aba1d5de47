"""Class conflict rules: a small vocabulary, declared in config and applied in order.

Multi-label masks let a pixel be several classes at once; some combinations make no sense for a
given product. Each rule is one YAML mapping:

```yaml
rules:
  - {wins: water, over: [building]}          # where water is, building is not (DSTL 3rd place)
  - {wins: building, over: all}              # buildings take their pixels from every other class
  - {keep: vehicle, within: [road, track], buffer_m: 5}  # vehicles only on or near roads
  - {exclusive: [standing_water, waterway]}  # at most one of them; the more probable one stays
```

- `wins: A, over: [B, ...] | all`: pixels of A are removed from B, ... (from every class but A
  with `all`). A itself is unchanged.
- `keep: A, within: [B, ...], buffer_m | buffer_px`: pixels of A farther than the buffer from
  every pixel of B, ... are removed (pixel by pixel, so the rule is exact strip by strip).
- `exclusive: [A, B, ...]`: where several of them are set, only the one with the highest
  probability stays; ties, and masks without probabilities, keep the one listed first.

Rules run in the order given, each on the result of the one before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError, field_validator, model_validator
from scipy import ndimage

from spectraseg.errors import ConfigError, did_you_mean
from spectraseg.grid import Grid
from spectraseg.postprocess.units import metres_to_pixels
from spectraseg.settings import Settings

ALL = "all"


def _names(value: Any) -> Any:
    # `over: building` reads as `over: [building]`.
    return (value,) if isinstance(value, str) else value


class WinsRule(Settings):
    """Pixels of `wins` are taken away from the classes in `over` (or from all others)."""

    wins: str
    over: tuple[str, ...] | Literal["all"]

    @field_validator("over", mode="before")
    @classmethod
    def _over(cls, value: Any) -> Any:
        return value if value == ALL else _names(value)


class KeepWithinRule(Settings):
    """Pixels of `keep` survive only within `buffer` of the classes in `within`."""

    keep: str
    within: tuple[str, ...]
    buffer_m: float = 0.0
    buffer_px: float = 0.0

    @field_validator("within", mode="before")
    @classmethod
    def _within(cls, value: Any) -> Any:
        return _names(value)

    @model_validator(mode="after")
    def _check(self) -> KeepWithinRule:
        if self.buffer_m < 0 or self.buffer_px < 0:
            raise ValueError("the buffer must not be negative")
        if self.buffer_m and self.buffer_px:
            raise ValueError("give buffer_m or buffer_px, not both")
        if not self.within:
            raise ValueError("'within' needs at least one class")
        return self


class ExclusiveRule(Settings):
    """At most one of the `exclusive` classes per pixel: the most probable one."""

    exclusive: tuple[str, ...]

    @model_validator(mode="after")
    def _check(self) -> ExclusiveRule:
        if len(self.exclusive) < 2:
            raise ValueError("'exclusive' needs at least two classes")
        return self


Rule = WinsRule | KeepWithinRule | ExclusiveRule
RULE_KINDS: dict[str, type[Settings]] = {
    "wins": WinsRule,
    "keep": KeepWithinRule,
    "exclusive": ExclusiveRule,
}


def parse_rule(raw: Any, *, where: str = "rules") -> Rule:
    """One rule from its YAML mapping, with an error that names the rule and the fix."""
    if isinstance(raw, WinsRule | KeepWithinRule | ExclusiveRule):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{where}: a rule is a mapping such as {{wins: water, over: [building]}}, got {raw!r}."
        )
    kinds = [key for key in raw if key in RULE_KINDS]
    if len(kinds) != 1:
        first = str(next(iter(raw), ""))
        raise ConfigError(
            f"{where}: rule {dict(raw)!r} must start with one of {', '.join(RULE_KINDS)}"
            f"{did_you_mean(first, list(RULE_KINDS)) if not kinds else ''}."
        )
    try:
        rule = RULE_KINDS[kinds[0]].model_validate(dict(raw))
    except ValidationError as error:
        first_error = error.errors()[0]
        location = ".".join(str(part) for part in first_error["loc"])
        detail = f"{location}: {first_error['msg']}" if location else first_error["msg"]
        raise ConfigError(f"{where}: rule {dict(raw)!r}: {detail}.") from None
    assert isinstance(rule, WinsRule | KeepWithinRule | ExclusiveRule)
    return rule


def parse_rules(raw: Any, *, where: str = "rules") -> tuple[Rule, ...]:
    """A list of rules (None for none)."""
    if raw is None:
        return ()
    if isinstance(raw, Mapping | str) or not isinstance(raw, Sequence):
        raise ConfigError(f"{where}: expected a list of rules, got {type(raw).__name__}.")
    return tuple(parse_rule(item, where=f"{where}[{i}]") for i, item in enumerate(raw))


@dataclass(frozen=True)
class ResolvedRule:
    """A rule with class positions instead of names and its buffer in pixels."""

    kind: Literal["wins", "keep", "exclusive"]
    subject: int  # the class that wins / is kept; -1 for `exclusive`
    others: tuple[int, ...]  # over / within / the exclusive classes
    buffer_px: float = 0.0

    @property
    def halo_px(self) -> int:
        return math.ceil(self.buffer_px) if self.kind == "keep" else 0


def _index(name: str, class_names: Sequence[str], where: str) -> int:
    if name not in class_names:
        raise ConfigError(f"{where}: unknown class {name!r}{did_you_mean(name, class_names)}.")
    return list(class_names).index(name)


def resolve_rules(
    rules: Sequence[Rule], class_names: Sequence[str], grid: Grid | None = None
) -> list[ResolvedRule]:
    """Check every class name against `class_names` and convert buffers to pixels of `grid`."""
    resolved: list[ResolvedRule] = []
    for position, rule in enumerate(rules):
        where = f"rules[{position}]"
        if isinstance(rule, WinsRule):
            winner = _index(rule.wins, class_names, where)
            names = [n for n in class_names if n != rule.wins] if rule.over == ALL else rule.over
            losers = tuple(_index(name, class_names, where) for name in names)
            resolved.append(ResolvedRule("wins", winner, tuple(i for i in losers if i != winner)))
        elif isinstance(rule, KeepWithinRule):
            kept = _index(rule.keep, class_names, where)
            zone = tuple(_index(name, class_names, where) for name in rule.within)
            buffer_px = rule.buffer_px
            if rule.buffer_m:
                if grid is None:
                    raise ConfigError(f"{where}: buffer_m needs a raster grid to convert.")
                buffer_px = metres_to_pixels(rule.buffer_m, grid, what=f"{where}.buffer_m")
            resolved.append(ResolvedRule("keep", kept, zone, buffer_px))
        else:
            members = tuple(_index(name, class_names, where) for name in rule.exclusive)
            resolved.append(ResolvedRule("exclusive", -1, members))
    return resolved


def _dilate(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Pixels whose centre is within `radius_px` of a set pixel's centre (edge-padded)."""
    reach = math.ceil(radius_px)
    if reach <= 0 or not mask.any():
        return mask.copy()
    offsets = np.arange(-reach, reach + 1)
    structure = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius_px * radius_px
    padded = np.pad(mask, reach, mode="edge")
    grown = ndimage.binary_dilation(padded, structure=structure)
    return np.asarray(grown[reach:-reach, reach:-reach], dtype=bool)


def apply_rule(mask: np.ndarray, rule: ResolvedRule, probs: np.ndarray | None = None) -> np.ndarray:
    """One rule on a (K, H, W) bool mask; returns a new mask, the input is untouched.

    Example:
        >>> mask = np.ones((2, 1, 2), bool)  # both classes everywhere
        >>> apply_rule(mask, ResolvedRule("wins", 0, (1,)))[1].tolist()
        [[False, False]]
    """
    result = mask.copy()
    if rule.kind == "wins":
        for loser in rule.others:
            result[loser] &= ~mask[rule.subject]
    elif rule.kind == "keep":
        zone = np.any(mask[list(rule.others)], axis=0)
        result[rule.subject] &= _dilate(zone, rule.buffer_px)
    else:
        members = list(rule.others)
        if probs is None:
            # Without probabilities the first class listed has priority.
            score = -np.arange(len(members), dtype=np.float32)[:, None, None]
            score = np.broadcast_to(score, (len(members), *mask.shape[1:]))
        else:
            # A set pixel always beats an unset one, even with a missing (NaN) probability.
            score = np.nan_to_num(probs[members].astype(np.float32), nan=-1.0)
        # Only set classes compete; argmax returns the first of equal scores (list order).
        competing = np.where(mask[members], score, -np.inf)
        best = np.argmax(competing, axis=0)
        for position, member in enumerate(members):
            result[member] &= best == position
    return result


def apply_rules(
    mask: np.ndarray, rules: Sequence[ResolvedRule], probs: np.ndarray | None = None
) -> np.ndarray:
    """Every rule in order on a (K, H, W) bool mask (probabilities for `exclusive`)."""
    result = mask.copy()
    for rule in rules:
        result = apply_rule(result, rule, probs)
    return result


def rules_halo_px(rules: Sequence[ResolvedRule]) -> int:
    """Rows beyond a strip the rules need, one after the other."""
    return sum(rule.halo_px for rule in rules)
