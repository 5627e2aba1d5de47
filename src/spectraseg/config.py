"""The run config: every stage's settings in one validated YAML document.

```yaml
data:        {patch_size: 128, indices: [ndwi, savi], split: {validation_share: 0.25}}
model:       {name: unet, unet: {depth: 4, base_filters: 16}}
loss:        {terms: {bce: 1.0, log_jaccard: 1.0}}
augment:     {d4: true}
sampling:    {class_balance: 0.5}
train:       {epochs: 40, learning_rate: 0.001, schedule: {name: cosine}}
predict:     {tta: 8, tiling: {overlap: 0.5}}
postprocess: {thresholds: auto}
```
Each section is the settings class its stage declares next to its code; this module only
composes them. A file sets what it wants and the rest keeps the defaults (which are tuned to
train well on the built-in sample). Loading validates everything once, so a typo fails before
any work starts, naming the file and the key: `configs/run.yaml: unknown key 'train.epoch'
(did you mean 'epochs'?)`. Overrides (`--set train.learning_rate=3e-4`) are typed by the field
they set.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError, model_validator

from spectraseg.data.augment import AugmentSettings
from spectraseg.data.sampling import SamplingSettings
from spectraseg.data.settings import DataSettings
from spectraseg.errors import ConfigError, did_you_mean
from spectraseg.io.yaml_file import read_yaml
from spectraseg.models.densenet import FCDenseNetSettings
from spectraseg.models.head import Head
from spectraseg.models.pretrained import EncoderSettings
from spectraseg.models.resnet_unet import ResNetUNetSettings
from spectraseg.models.unet import UNetSettings
from spectraseg.postprocess.chain import PostprocessSettings
from spectraseg.predict.raster import PredictSettings
from spectraseg.run_settings import RunSettings
from spectraseg.settings import Settings
from spectraseg.train.fit import TrainSettings
from spectraseg.train.forest import ForestSettings
from spectraseg.train.index_threshold import IndexThresholdSettings
from spectraseg.train.losses import LossSettings

__all__ = ["Config", "ModelSettings", "given_keys", "load_config", "parse_override"]

PathLike = str | os.PathLike[str]

MODEL_NAMES = ("unet", "fc-densenet", "resnet-unet", "random-forest", "index-threshold")
ModelName = Literal["unet", "fc-densenet", "resnet-unet", "random-forest", "index-threshold"]


class ModelSettings(Settings):
    """Which model to train and the settings of each kind (`model` in the config).

    Only the section of the chosen `name` is used (`fc-densenet` reads `fc_densenet`); the
    others may stay at their defaults.
    """

    name: ModelName = "unet"
    head: Head | None = None
    """The network's head, whichever network: sigmoid (multi-label: classes may overlap) or
    softmax (exclusive: cross-entropy over the classes); it wins over the section's `head`.
    Neither set: training chooses from the labels and says so in its log: softmax when no
    pixel is in two classes and every labelled pixel is in one, else sigmoid."""
    unet: UNetSettings = UNetSettings(base_filters=16, max_filters=256)
    """The default is half as wide as the DSTL-size U-Net: on the built-in sample it scores the
    same within a few minutes of CPU time, where the full width is 4x slower per step."""
    fc_densenet: FCDenseNetSettings = FCDenseNetSettings()
    resnet_unet: ResNetUNetSettings = ResNetUNetSettings()
    encoder: EncoderSettings = EncoderSettings()
    """Pretrained weights and frozen epochs for the `resnet-unet` encoder."""
    random_forest: ForestSettings = ForestSettings()
    index_threshold: IndexThresholdSettings = IndexThresholdSettings()

    def chosen(self) -> Settings:
        """The section of the model `name` names, e.g. `fc_densenet` for "fc-densenet", with
        `head` in it when that is set."""
        section: Settings = getattr(self, self.name.replace("-", "_"))
        if self.head is not None and "head" in type(section).model_fields:
            section = section.model_copy(update={"head": self.head})
        return section

    def network_head(self) -> Head | None:
        """The head the config asks for (`head`, else the chosen section's); None: unset."""
        head: Head | None = getattr(self.chosen(), "head", None)
        return head


class Config(Settings):
    """Every stage's settings. Build it with `load_config`, print it with `to_yaml`."""

    data: DataSettings = DataSettings()
    model: ModelSettings = ModelSettings()
    loss: LossSettings = LossSettings()
    augment: AugmentSettings = AugmentSettings()
    sampling: SamplingSettings = SamplingSettings()
    train: TrainSettings = TrainSettings()
    predict: PredictSettings = PredictSettings()
    postprocess: PostprocessSettings = PostprocessSettings()
    run: RunSettings = RunSettings()
    """What `spectraseg run` works on; `train --config` takes `run.data` for `--data`."""
    # A new stage adds its section here: `name: ItsSettings = ItsSettings()`.

    @model_validator(mode="after")
    def _crop_leaves_a_centre(self) -> Config:
        crop, patch = self.train.centre_crop_px, self.data.patch_size
        if 2 * crop >= patch:
            raise ValueError(
                f"train.centre_crop_px={crop} leaves nothing of a {patch} px patch to score; "
                f"use less than {(patch + 1) // 2} or a larger data.patch_size"
            )
        return self

    def to_yaml(self) -> str:
        """The whole resolved config as YAML that `load_config` reads back to an equal config."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _settings_class(annotation: Any) -> type[Settings] | None:
    """The Settings subclass a field holds (directly or as `X | None`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, Settings):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        found = [_settings_class(a) for a in typing.get_args(annotation)]
        classes = [c for c in found if c is not None]
        return classes[0] if len(classes) == 1 else None
    return None


def _dict_values_class(annotation: Any) -> type[Settings] | None:
    """For `dict[str, SomeSettings]` fields, SomeSettings."""
    if typing.get_origin(annotation) is dict:
        args = typing.get_args(annotation)
        return _settings_class(args[1]) if len(args) == 2 else None
    return None


def _is_dict(annotation: Any) -> bool:
    if typing.get_origin(annotation) is dict:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_dict(a) for a in typing.get_args(annotation))
    return False


def _is_text(annotation: Any) -> bool:
    """True for str, Path and Literal-of-strings fields (and their optional forms)."""
    if annotation in (str, Path):
        return True
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return all(isinstance(a, str) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return bool(args) and all(_is_text(a) for a in args)
    return False


def _unknown_key(source: str, path: Sequence[str], key: str, known: Sequence[str]) -> ConfigError:
    where = ".".join([*path, key])
    return ConfigError(f"{source}: unknown key {where!r}{did_you_mean(key, known)}")


def _merge(
    model: type[Settings], base: dict[str, Any], update: Any, source: str, path: list[str]
) -> dict[str, Any]:
    """`base` with `update` laid over it, recursing into sub-sections, rejecting unknown keys.

    Only sections (Settings-typed fields) are merged key by key: a plain mapping field such as
    `loss.terms` is replaced whole, so setting `terms: {dice: 1}` does not keep the default terms.
    """
    if not isinstance(update, Mapping):
        where = ".".join(path) or "the top level"
        raise ConfigError(f"{source}: {where} must be a mapping of keys to values.")
    merged = dict(base)
    fields = model.model_fields
    for key, value in update.items():
        key = str(key)
        if key not in fields:
            raise _unknown_key(source, path, key, list(fields))
        annotation = fields[key].annotation
        section = _settings_class(annotation)
        values_class = _dict_values_class(annotation)
        if section is not None and isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merged[key] = _merge(section, base[key], value, source, [*path, key])
        elif values_class is not None and isinstance(value, Mapping):
            merged[key] = {
                str(name): _merge(values_class, {}, item, source, [*path, key, str(name)])
                for name, item in value.items()
            }
        else:
            merged[key] = value
    return merged


def parse_override(text: str) -> tuple[list[str], str]:
    """Split `a.b.c=value` into (["a", "b", "c"], "value").

    Example:
        >>> parse_override("train.learning_rate=3e-4")
        (['train', 'learning_rate'], '3e-4')
    """
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.epochs=5")
    return [part.strip() for part in key.strip().split(".")], value.strip()


def _apply_override(merged: dict[str, Any], text: str) -> None:
    """Set one `--set key=value` in the merged document, typed by the field it sets."""
    keys, raw = parse_override(text)
    source = f"--set {text}"
    model: type[Settings] | None = Config
    target = merged
    path: list[str] = []
    for position, key in enumerate(keys):
        last = position == len(keys) - 1
        if model is None:
            # Inside a plain mapping field (loss.terms.dice=1): any key, YAML-typed value.
            if not last:
                target = target.setdefault(key, {})
                path.append(key)
                continue
            target[key] = _typed(raw, None, source)
            return
        fields = model.model_fields
        if key not in fields:
            raise _unknown_key(source, path, key, list(fields))
        annotation = fields[key].annotation
        if last:
            target[key] = _typed(raw, annotation, source)
            return
        section = _settings_class(annotation)
        if section is None and not _is_dict(annotation):
            raise ConfigError(f"{source}: {'.'.join([*path, key])!r} has no sub-keys.")
        current = target.get(key)
        if not isinstance(current, dict):
            current = {}
            target[key] = current
        target, model = current, section
        path.append(key)


def _typed(raw: str, annotation: Any, source: str) -> Any:
    """Text fields keep the text as given, but `null` unsets an optional one
    (`--set model.unet.head=null`); others are read as YAML (numbers, lists, null)."""
    if annotation is not None and _is_text(annotation):
        if raw == "null" and type(None) in typing.get_args(annotation):
            return None
        return raw
    try:
        return yaml.safe_load(raw) if raw else None
    except yaml.YAMLError as error:
        raise ConfigError(f"{source}: value is not valid YAML ({error}).") from None


def given_keys(path: PathLike | None = None, overrides: Sequence[str] = ()) -> frozenset[str]:
    """The dotted keys a config file and `--set` overrides name, e.g. "predict.tta".

    Defaults a user did not write are not requests: prediction takes what the file leaves
    out from the model card instead, so it must know which values were written.
    """
    keys: set[str] = set()

    def walk(document: Mapping[str, Any], prefix: str) -> None:
        for key, value in document.items():
            dotted = f"{prefix}{key}"
            keys.add(dotted)
            if isinstance(value, Mapping):
                walk(value, dotted + ".")

    if path is not None:
        document = _read_file(Path(path))
        if isinstance(document, Mapping):
            walk(document, "")
    for text in overrides:
        parts, _ = parse_override(text)
        keys.update(".".join(parts[: n + 1]) for n in range(len(parts)))
    return frozenset(keys)


def _read_file(path: Path) -> Any:
    document = read_yaml(path, "config")
    return {} if document is None else document


def _location_source(location: Sequence[str], source: str, overrides: Sequence[str]) -> str:
    """Who set the value at `location`: the last --set naming it, else the file."""
    dotted = ".".join(location)
    for text in reversed(overrides):
        key = text.partition("=")[0].strip()
        if dotted == key or dotted.startswith(key + "."):
            return f"--set {text}"
    return source


def load_config(
    path: PathLike | None = None,
    overrides: Sequence[str] = (),
    *,
    base: Config | None = None,
) -> Config:
    """The config from a YAML file (None: the defaults) with `--set` overrides applied.

    Args:
        base: the values the file and overrides are laid over (default: the defaults).

    Raises:
        ConfigError: one line naming the file or override, the key, and what is wrong.
    """
    source = str(path) if path is not None else "config"
    defaults = (base if base is not None else Config()).model_dump()
    merged = defaults
    if path is not None:
        merged = _merge(Config, defaults, _read_file(Path(path)), source, [])
    for text in overrides:
        _apply_override(merged, text)
    try:
        return Config.model_validate(merged)
    except ValidationError as error:
        first = error.errors()[0]
        location = [str(part) for part in first["loc"]]
        # Drop pydantic's union-branch names ("function-after[...]") from the key path.
        location = [part for part in location if "[" not in part]
        who = _location_source(location, source, overrides)
        message = first["msg"].removeprefix("Value error, ")
        value = first.get("input")
        shown = "" if isinstance(value, Mapping) else f" (got {value!r})"
        raise ConfigError(f"{who}: {'.'.join(location)}: {message}{shown}.") from None
