"""The run config: YAML sections, typed overrides, did-you-mean errors, a faithful round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from spectraseg.config import Config, load_config
from spectraseg.errors import ConfigError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_no_file_gives_the_defaults() -> None:
    assert load_config(None) == Config()


def test_file_sets_some_keys_and_the_rest_keep_their_defaults(tmp_path) -> None:
    config = load_config(write(tmp_path, "model:\n  unet: {depth: 3}\ntrain: {epochs: 7}\n"))
    assert config.model.unet.depth == 3
    assert config.model.unet.base_filters == Config().model.unet.base_filters
    assert config.train.epochs == 7
    assert config.train.learning_rate == Config().train.learning_rate


def test_a_mapping_value_is_replaced_whole_not_merged(tmp_path) -> None:
    config = load_config(write(tmp_path, "loss:\n  terms: {dice: 1.0}\n"))
    assert config.loss.terms == {"dice": 1.0}


def test_unknown_key_names_the_file_and_suggests_the_key(tmp_path) -> None:
    path = write(tmp_path, "train:\n  epoch: 3\n")
    with pytest.raises(
        ConfigError, match=r"run.yaml: unknown key 'train.epoch' \(did you mean 'epochs'\?\)"
    ):
        load_config(path)


def test_unknown_nested_key_shows_its_whole_path(tmp_path) -> None:
    path = write(tmp_path, "data:\n  split:\n    validation_shar: 0.3\n")
    with pytest.raises(ConfigError, match=r"'data\.split\.validation_shar'.*'validation_share'"):
        load_config(path)


def test_invalid_value_names_the_file_key_and_value(tmp_path) -> None:
    path = write(tmp_path, "model:\n  unet: {depth: 9}\n")
    with pytest.raises(ConfigError, match=r"run.yaml: model.unet.depth: .*6 \(got 9\)"):
        load_config(path)


def test_overrides_are_typed_by_their_field() -> None:
    config = load_config(
        None,
        [
            "train.learning_rate=3e-4",
            "train.max_minutes=2",
            "data.indices=[ndwi, savi]",
            "model.unet.activation=gelu",
            "loss.terms.dice=0.5",
            "data.split.validation_scenes=[scene_003]",
        ],
    )
    assert config.train.learning_rate == pytest.approx(3e-4)
    assert config.train.max_minutes == 2.0
    assert config.data.indices.names == ("ndwi", "savi")
    assert config.model.unet.activation == "gelu"
    assert config.loss.terms["dice"] == 0.5
    assert config.data.split.validation_scenes == ("scene_003",)


def test_text_fields_keep_yaml_lookalikes_as_text() -> None:
    # YAML would read "on" as True; a text field must receive the text.
    config = load_config(None, ["data.labels.column=on"])
    assert config.data.labels.column == "on"


def test_null_unsets_an_optional_text_field() -> None:
    config = load_config(None, ["model.unet.head=softmax", "model.unet.head=null"])
    assert config.model.unet.head is None


def test_bad_override_names_the_override() -> None:
    with pytest.raises(ConfigError, match=r"--set train\.epochs=many: train\.epochs"):
        load_config(None, ["train.epochs=many"])
    with pytest.raises(ConfigError, match=r"--set trian\.epochs=2: unknown key 'trian'"):
        load_config(None, ["trian.epochs=2"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_config(None, ["train.epochs"])


def test_yaml_round_trip_gives_an_equal_config(tmp_path) -> None:
    config = load_config(None, ["data.indices=[ndwi]", "train.epochs=3"])
    assert load_config(write(tmp_path, config.to_yaml())) == config


def test_missing_and_malformed_files_are_config_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nothing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "train: [epochs: 3\n"))
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_example_config_is_valid(path: Path) -> None:
    load_config(path)
