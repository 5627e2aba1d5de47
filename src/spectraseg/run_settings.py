"""The `run:` section: what `spectraseg run CONFIG` works on, beside the stage settings.

```yaml
run:
  out: runs/s2              # the run folder (relative paths: to the config file's folder)
  data: data                # the training data folder (as `spectraseg train --data` takes it)
  test: test                # optional: separate scenes with truth, predicted and scored;
                            # without it, models are scored on the split's held-out area
  inference: [big.tif]      # optional: rasters predicted and vectorized, not scored
  models:                   # one entry per model; each is the config plus its own --set lines
    unet: {}
    forest: {set: [model.name=random-forest]}
    per-class: {per_class: true}   # one binary model per class, merged by its ensemble.yaml
  search: {trials: 16, max_minutes_per_trial: 4}   # optional: TPE search before training
data: {...}                 # the stage sections, shared by every model
```
Every model reads the same data, split and post-processing; the first model is the primary
one whose scores are `RUN/scores.json`. Relative paths resolve against the config file's folder,
so a config travels with its data (`spectraseg demo` writes `DIR/config.yaml` naming `data`).
`spectraseg train --config` reads `run.data` when `--data` is not given; the other stages read
nothing here, which is why this section sits beside the vocabulary and not in `pipeline/`.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator

from spectraseg.settings import Settings

__all__ = ["ModelRunSettings", "RunSettings", "SearchRunSettings"]

# A model's label names its folders (RUN/models/<label>/): keep it a plain file name.
LABEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ModelRunSettings(Settings):
    """One model of a run: the shared config with these `--set` lines laid over it."""

    set: tuple[str, ...] = ()
    """Overrides for this model only, e.g. `[model.name=random-forest]`."""
    per_class: bool = False
    """Train one binary model per class and merge them (`spectraseg train --per-class`)."""


class SearchRunSettings(Settings):
    """An optional architecture and hyperparameter search before the models train."""

    trials: int = Field(default=16, ge=1)
    max_minutes_per_trial: float = Field(default=4.0, gt=0)
    space: Path | None = None
    """A search-space YAML; None: the default space."""
    workers: int = Field(default=1, ge=1)


class RunSettings(Settings):
    """Where a run reads its data and writes its folder, and which models it trains."""

    out: Path | None = None
    """The run folder; None: runs/<config file name> in the current folder."""
    data: Path | None = None
    test: Path | None = None
    held_out: bool = True
    """Without `test`: score every model on the training data's held-out validation area."""
    inference: tuple[Path, ...] = ()
    models: dict[str, ModelRunSettings] = Field(
        default_factory=lambda: {"unet": ModelRunSettings()}
    )
    search: SearchRunSettings | None = None
    report: bool = True

    @field_validator("models")
    @classmethod
    def _labels_are_file_names(
        cls, models: dict[str, ModelRunSettings]
    ) -> dict[str, ModelRunSettings]:
        if not models:
            raise ValueError("name at least one model, e.g. models: {unet: {}}")
        for label in models:
            if not LABEL_PATTERN.match(label):
                raise ValueError(
                    f"model label {label!r} must be a plain name (letters, digits, '_', '-', '.')"
                )
        return models
