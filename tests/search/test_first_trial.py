"""A new study's first trial is the config the search started from, when the space holds it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from spectraseg.config import load_config
from spectraseg.search.defaults import default_space
from spectraseg.search.first_trial import base_params
from spectraseg.search.runner import SearchOptions, run_search
from spectraseg.search.space import parse_space
from spectraseg.search.storage import open_storage
from spectraseg.search.trial import trial_config

SPACE = {
    "train.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
    "train.batch_size": {"choices": [4, 8, 16]},
    "dropout": {"choices": [False, True]},
    "model.unet.dropout": {"low": 0.05, "high": 0.5, "when": {"dropout": True}},
}


def space(parameters: dict = SPACE):  # type: ignore[no-untyped-def]
    return parse_space({"parameters": parameters}, "space.yaml")


def test_the_base_values_are_the_first_trial_and_rebuild_the_base_config() -> None:
    base = load_config(None, ["train.learning_rate=0.002", "model.unet.dropout=0.1"])
    params = base_params(space(), base)
    assert params == {
        "train.learning_rate": 0.002,
        "train.batch_size": base.train.batch_size,
        "dropout": True,
        "model.unet.dropout": 0.1,
    }
    assert trial_config(base, space(), params).model_dump() == base.model_dump()


def test_a_switch_takes_the_choice_that_uses_the_config_values() -> None:
    base = load_config(None, ["model.unet.dropout=0.0"])
    params = base_params(space(), base)
    assert params is not None
    assert params["dropout"] is False
    assert "model.unet.dropout" not in params


def test_a_base_outside_a_range_is_not_enqueued() -> None:
    base = load_config(None, ["train.learning_rate=0.5"])
    assert base_params(space(), base) is None


def test_a_loss_weight_the_base_leaves_out_counts_as_zero() -> None:
    base = load_config(None, ["loss.terms={bce: 1.0}"])
    params = base_params(space({"loss.terms.dice": {"low": 0.0, "high": 1.0}}), base)
    assert params == {"loss.terms.dice": 0.0}


def test_the_default_config_lies_inside_the_default_space() -> None:
    base = load_config(None)
    params = base_params(default_space(256, base), base)
    assert params is not None
    assert params["model.name"] == "unet"


@pytest.mark.slow
def test_a_new_study_trains_the_base_config_first(sample, tiny_config, tiny_space, tmp_path):
    out = tmp_path / "search"
    run_search(
        SearchOptions(
            data_dir=sample, out_dir=out, config_path=tiny_config, space_path=tiny_space, trials=1
        )
    )
    (trial,) = optuna.load_study(study_name="search", storage=open_storage(out, None)).trials
    base = load_config(tiny_config)
    assert trial.user_attrs["base_config"] is True
    assert trial.params["model.unet.base_filters"] == base.model.unet.base_filters
    assert trial.params["train.learning_rate"] == base.train.learning_rate
    saved = load_config(Path(out / "trials" / "search-0000" / "config.yaml"))
    assert saved.model.unet == base.model.unet
