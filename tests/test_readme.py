"""The README's Python example runs as written (from a folder holding `configs/`)."""

from __future__ import annotations

import re
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
