"""The messages a newcomer meets first say what to write, with an example (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from spectraseg.cli.main import main
from spectraseg.errors import LabelError
from spectraseg.io.classes_file import load_classes
from spectraseg.sample import generate_sample


def only_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if ": error: " in line]
    assert len(errors) == 1, err
    return errors[0]


def test_a_list_of_bare_class_names_asks_for_names_and_ids(tmp_path: Path) -> None:
    path = tmp_path / "classes.yaml"
    path.write_text("classes:\n  - building\n  - water\n")
    with pytest.raises(
        LabelError, match=r"classes\.0: 'building' is a bare name.*name: building, id: 1"
    ):
        load_classes(path)


def test_a_missing_classes_yaml_shows_an_example_and_init(tmp_path: Path) -> None:
    with pytest.raises(
        LabelError, match=r"no such classes file.*\{name: building, id: 1.*spectraseg init"
    ):
        load_classes(tmp_path / "classes.yaml")


def test_evaluate_names_its_own_class_column_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = generate_sample(tmp_path / "data", scenes=1, size=64)
    arguments = [
        "evaluate",
        "--pred", str(sample / "masks" / "scene_000.tif"),
        "--truth", str(sample / "labels" / "scene_000.geojson"),
        "--classes", str(sample / "classes.yaml"),
        "--class-column", "klass",
        "--out", str(tmp_path / "scores"),
    ]  # fmt: skip
    assert main(arguments) == 2
    error = only_error(capsys)
    assert "no column 'klass' (did you mean 'class'?). Pass --class-column NAME." in error
    assert "data.labels" not in error


def test_an_unknown_index_fails_when_the_config_loads(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--set", "data.indices=[ndvi,foo]"]) == 2
    error = only_error(capsys)
    assert "unknown spectral index 'foo'" in error and "ndvi" in error
