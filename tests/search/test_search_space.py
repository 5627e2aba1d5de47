"""The search space: YAML in, validated once, with one-line errors naming file and parameter."""

from __future__ import annotations

import optuna
import pytest
import yaml

from spectraseg.errors import ConfigError
from spectraseg.search.defaults import default_space
from spectraseg.search.space import load_space, parse_space


def space(parameters: dict) -> object:
    return parse_space({"parameters": parameters}, "space.yaml")


def test_types_follow_the_values_floats_ints_and_choices() -> None:
    parsed = space(
        {
            "train.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
            "model.unet.depth": {"low": 3, "high": 5},
            "train.optimizer": {"choices": ["adamw", "sgd"]},
        }
    )
    kinds = {name: p.kind() for name, p in parsed.parameters.items()}
    assert kinds == {
        "train.learning_rate": "float",
        "model.unet.depth": "int",
        "train.optimizer": "categorical",
    }


def test_a_conditional_parameter_is_suggested_only_when_its_switch_is_on() -> None:
    parsed = space(
        {
            "dropout": {"choices": [False, True]},
            "model.unet.dropout": {"low": 0.1, "high": 0.5, "when": {"dropout": True}},
        }
    )
    off = parsed.suggest(optuna.trial.FixedTrial({"dropout": False}))
    on = parsed.suggest(optuna.trial.FixedTrial({"dropout": True, "model.unet.dropout": 0.2}))
    assert off == {"dropout": False}
    assert on == {"dropout": True, "model.unet.dropout": 0.2}
    assert parsed.switches() == {"dropout"}


def test_fit_accepts_values_inside_and_rejects_values_outside() -> None:
    parsed = space({"model.unet.depth": {"low": 3, "high": 4}})
    assert parsed.fit({"model.unet.depth": 4}) == {"model.unet.depth": 4}
    assert parsed.fit({"model.unet.depth": 5}) is None
    assert parsed.fit({}) is None


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        ({"low": 5, "high": 3}, "inverted"),
        ({"low": 3, "high": 3}, "empty"),
        ({"low": 0.0, "high": 1.0, "log": True}, "log range needs low > 0"),
        ({"choices": []}, "at least one value"),
    ],
)
def test_bad_ranges_fail_with_the_parameter_named(parameter: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"space.yaml: parameters.model.unet.depth: .*{message}"):
        space({"model.unet.depth": parameter})


def test_an_unknown_name_gets_a_did_you_mean() -> None:
    with pytest.raises(
        ConfigError, match=r"train.learning_rat: not a config key.*'train.learning_rate'"
    ):
        space({"train.learning_rat": {"low": 0.1, "high": 0.2}})


def test_a_value_the_config_refuses_is_named() -> None:
    with pytest.raises(
        ConfigError, match=r"parameters.model.unet.dropout: the config does not accept 1.0"
    ):
        space({"model.unet.dropout": {"low": 0.0, "high": 1.0}})


def test_when_must_name_an_earlier_parameter() -> None:
    with pytest.raises(ConfigError, match="'when' names 'dropout'"):
        space({"model.unet.dropout": {"low": 0.1, "high": 0.5, "when": {"dropout": True}}})


def test_loss_terms_are_keys_inside_a_mapping() -> None:
    parsed = space({"loss.terms.dice": {"low": 0.0, "high": 1.0}})
    assert "loss.terms.dice" in parsed.parameters


def test_the_default_space_holds_the_issue_dimensions_and_cuts_the_patch() -> None:
    parsed = default_space(largest_patch_px=100)
    names = set(parsed.parameters)
    for key in (
        "train.learning_rate", "train.optimizer", "train.batch_size", "data.patch_size",
        "model.unet.depth", "model.unet.base_filters", "model.unet.growth",
        "model.unet.kernel_size", "model.unet.convs_per_level", "model.unet.batch_norm",
        "model.unet.dropout", "model.unet.activation", "model.unet.init",
        "model.unet.upsampling", "loss.terms.bce", "loss.terms.log_jaccard", "loss.terms.dice",
        "loss.terms.focal", "sampling.class_balance", "augment.gain",
    ):  # fmt: skip
        assert key in names
    assert parsed.parameters["data.patch_size"].high == 96


def test_a_space_round_trips_through_yaml(tmp_path) -> None:
    parsed = default_space(largest_patch_px=256)
    path = tmp_path / "space.yaml"
    path.write_text(parsed.to_yaml())
    assert load_space(path).to_yaml() == parsed.to_yaml()
    assert yaml.safe_load(parsed.to_yaml())["pruner"] == "median"


def test_a_missing_space_file_is_named(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"nope.yaml: no such search-space file"):
        load_space(tmp_path / "nope.yaml")
