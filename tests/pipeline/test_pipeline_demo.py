"""`spectraseg demo`: `spectraseg run` on the built-in sample, with a config left to rerun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spectraseg.cli.main import main
from spectraseg.pipeline.runner import run_pipeline


@pytest.mark.slow
def test_the_demo_leaves_a_config_that_run_reruns_without_redoing_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    tiny = ["--minutes", "0.05", "--scenes", "2", "--size", "128"]
    assert main(["-q", "demo", "--out", str(out), *tiny]) == 0
    printed = capsys.readouterr().out
    assert "U-Net" in printed and "random forest" in printed
    assert f"report: {out / 'report.html'}" in printed
    assert isinstance(json.loads((out / "scores.json").read_text())["mean_jaccard"], float)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}

    results = run_pipeline(out / "config.yaml")

    assert results and not any(r.ran for r in results)  # every stage up to date
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before
