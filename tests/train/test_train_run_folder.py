"""Run folders: reuse rules, history and curves written whole."""

from __future__ import annotations

import csv

import pytest

from spectraseg.errors import CheckpointError, OutputExistsError
from spectraseg.train.run_folder import RunFolder


def test_non_empty_folder_needs_resume_or_overwrite(tmp_path) -> None:
    (tmp_path / "best.pt").write_bytes(b"old")
    (tmp_path / "notes.txt").write_text("mine")
    run = RunFolder(tmp_path)
    with pytest.raises(OutputExistsError, match="--resume"):
        run.prepare(resume=False, overwrite=False)
    run.prepare(resume=False, overwrite=True)
    assert not run.best.exists()
    assert (tmp_path / "notes.txt").exists()  # only the run's own files are removed


def test_overwrite_removes_the_old_event_log_so_no_old_epoch_shows(tmp_path) -> None:
    run = RunFolder(tmp_path)
    run.tensorboard.mkdir()
    (run.tensorboard / "events.out.tfevents.1.host").write_bytes(b"old")
    run.prepare(resume=False, overwrite=True)
    assert not run.tensorboard.exists()


def test_resume_needs_a_last_checkpoint(tmp_path) -> None:
    with pytest.raises(CheckpointError, match=r"last\.pt"):
        RunFolder(tmp_path).prepare(resume=True, overwrite=False)


def test_history_has_one_row_per_epoch_and_curves_are_a_png(tmp_path) -> None:
    run = RunFolder(tmp_path / "run")
    run.prepare(resume=False, overwrite=False)
    rows = [
        {"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "val_jaccard": 0.1, "jaccard_a": 0.1},
        {"epoch": 2, "train_loss": 0.8, "val_loss": 1.0, "val_jaccard": 0.3, "jaccard_a": 0.3},
    ]
    run.write_history(rows)
    run.write_curves(rows, ["a"])
    with run.history.open() as handle:
        table = list(csv.DictReader(handle))
    assert [row["epoch"] for row in table] == ["1", "2"]
    assert run.curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
