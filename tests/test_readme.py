"""The README's step-by-step commands and its Python example run as written (in an empty
folder, and from a folder holding `configs/`)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def python_example() -> str:
    """The README's first Python block: the whole chain from Python."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```python\n(import spectraseg as ss\n.*?)```", text, re.DOTALL)
    assert match, "README.md has no Python example starting with 'import spectraseg as ss'"
    return match.group(1)


def test_the_readme_python_example_runs(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "sample.yaml", tmp_path / "configs" / "sample.yaml")
    script = tmp_path / "example.py"
    script.write_text(python_example(), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "predictions" / "scene_000.geojson").is_file()
    assert float(done.stdout.strip().splitlines()[-1]) >= 0.0


# Training is shortened for the test (a tiny network, a few patches, one epoch); every other
# argument, path and file name is the README's own.
SHORT_TRAINING = [
    "--set", "model.unet.depth=3",
    "--set", "model.unet.base_filters=4",
    "--set", "data.patch_size=32",
    "--set", "train.epochs=1",
    "--set", "train.patches_per_epoch=8",
    "--set", "train.batch_size=4",
    "--set", "model.random_forest.trees=2",
]  # fmt: skip


def step_by_step_commands() -> list[list[str]]:
    """The README's step-by-step block: one argument list per command, comments dropped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"runs them\):\n\n```bash\n(.*?)```", text, re.DOTALL)
    assert match, "README.md has no step-by-step block after 'tests/test_readme.py runs them'"
    return [shlex.split(line, comments=True) for line in match.group(1).splitlines() if line]


def test_the_readme_step_by_step_commands_run_as_written(tmp_path: Path) -> None:
    commands = step_by_step_commands()
    assert [c[1] for c in commands] == [
        "sample", "train", "train", "predict", "vectorize", "evaluate"
    ]  # fmt: skip
    for command in commands:
        assert command[0] == "spectraseg", command
        extra = SHORT_TRAINING if command[1] == "train" else []
        done = subprocess.run(
            [sys.executable, "-m", "spectraseg", "-q", *command[1:], *extra],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, (command, done.stderr[-2000:])
    predictions = tmp_path / "predictions"
    for name in ("probs.tif", "mask.tif", "classes.tif", "classes.qml"):
        assert (predictions / f"scene_000_{name}").is_file(), name
    assert (predictions / "scene_000.geojson").is_file()
    assert (tmp_path / "scores" / "scores.json").is_file()
