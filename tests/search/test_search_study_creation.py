"""Two workers started at the same moment on an empty storage: one creates the study, the other
joins it, instead of stopping with Optuna's DuplicatedStudyError."""

from __future__ import annotations

import threading
from pathlib import Path

import optuna
import pytest
import yaml

from spectraseg.config import Config
from spectraseg.errors import ConfigError
from spectraseg.search.space import parse_space
from spectraseg.search.storage import open_storage
from spectraseg.search.study import create_study, study_space

from .conftest import TINY_SPACE

SPACE = parse_space(yaml.safe_load(TINY_SPACE), "space")


def test_the_second_creator_joins_the_first_creators_study(tmp_path: Path) -> None:
    storage = open_storage(tmp_path, None)
    first, first_created = create_study(
        storage, "search", space=SPACE, base=Config(), data_dir=tmp_path
    )
    second, second_created = create_study(
        storage, "search", space=SPACE, base=Config(), data_dir=tmp_path
    )

    assert (first_created, second_created) == (True, False)
    assert optuna.get_all_study_names(storage) == [first.study_name]
    assert study_space(second).to_yaml() == SPACE.to_yaml()


def test_joining_waits_for_the_creators_attributes(tmp_path: Path) -> None:
    storage = open_storage(tmp_path, None)
    # The moment between the first worker's create and its attributes: a bare study.
    bare = optuna.create_study(storage=storage, study_name="search", direction="maximize")

    def finish_creating() -> None:
        bare.set_user_attr("space", SPACE.to_yaml())
        bare.set_user_attr("base_config", Config().model_dump(mode="json"))
        bare.set_user_attr("created", "now")

    later = threading.Timer(0.3, finish_creating)
    later.start()
    joined, created = create_study(storage, "search", space=SPACE, base=Config(), data_dir=tmp_path)
    later.join()

    assert not created
    assert study_space(joined).to_yaml() == SPACE.to_yaml()


def test_a_study_created_at_the_same_moment_with_another_config_is_refused(
    tmp_path: Path,
) -> None:
    storage = open_storage(tmp_path, None)
    create_study(storage, "search", space=SPACE, base=Config(), data_dir=tmp_path)
    other = Config.model_validate({"train": {"epochs": 3}})

    with pytest.raises(ConfigError, match=r"another config or space; pass --study NEW_NAME"):
        create_study(storage, "search", space=SPACE, base=other, data_dir=tmp_path)
