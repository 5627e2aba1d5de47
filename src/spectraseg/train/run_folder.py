"""The run folder: what one training run leaves behind, and the rules for reusing a folder.

```
RUN_DIR/
  config.yaml    the resolved, validated config the run used (rerun it with --config)
  split.json     the training scenes and the area of each held out for validation
  best.pt        the checkpoint of the best validation epoch, with tuned thresholds
  last.pt        the latest epoch, plus optimizer and RNG state for --resume
  history.csv    one row per epoch: losses, learning rate, per-class Jaccard
  curves.png     loss and per-class Jaccard by epoch
  train.log      the log of every session that wrote to the folder
  tensorboard/   TensorBoard's event log, when tensorboard is installed (`train/event_log.py`)
```
`best.pt` and `last.pt` are the only names containing "best" or "last", so scripts can glob
them. Every file but the logs (train.log, tensorboard/) is written atomically; the history and
the curves are rewritten whole after each epoch, so an interrupted run leaves a consistent
folder that `--resume` reads.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spectraseg.errors import CheckpointError, DataError, OutputExistsError
from spectraseg.io.atomic import atomic_path, write_text_atomic
from spectraseg.io.lock import LOCK_NAME

__all__ = ["RUN_FILES", "TENSORBOARD_FOLDER", "HistoryRow", "RunFolder"]

log = logging.getLogger(__name__)

HistoryRow = Mapping[str, float | int | str]

RUN_FILES = (
    "config.yaml",
    "split.json",
    "best.pt",
    "last.pt",
    "history.csv",
    "curves.png",
    "train.log",
)
TENSORBOARD_FOLDER = "tensorboard"


@dataclass(frozen=True)
class RunFolder:
    """The paths of a run folder and the writers of its plain files."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def split(self) -> Path:
        return self.path / "split.json"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def history(self) -> Path:
        return self.path / "history.csv"

    @property
    def curves(self) -> Path:
        return self.path / "curves.png"

    @property
    def log(self) -> Path:
        return self.path / "train.log"

    @property
    def tensorboard(self) -> Path:
        return self.path / TENSORBOARD_FOLDER

    def prepare(self, *, resume: bool, overwrite: bool) -> None:
        """Create the folder, or check that it may be reused.

        An existing non-empty folder is continued with `resume` (from `last.pt`) or started over
        with `overwrite` (the run's own files are deleted, other files are left alone).

        Raises:
            OutputExistsError: the folder holds files and neither flag was given.
            CheckpointError: `resume` without a `last.pt` to resume from.
        """
        if resume:
            if not self.last.is_file():
                raise CheckpointError(
                    f"{self.last}: nothing to resume (no last.pt). Drop --resume to start a run."
                )
            return
        if self.path.exists() and not self.path.is_dir():
            raise OutputExistsError(
                f"{self.path}: exists and is not a folder. Choose another --out."
            )
        # The lock of this very run and killed runs' leftovers do not make a folder "used".
        if self.path.is_dir() and any(
            entry.name != LOCK_NAME and not entry.name.endswith(".partial")
            for entry in self.path.iterdir()
        ):
            if not overwrite:
                raise OutputExistsError(
                    f"{self.path}: run folder is not empty. Pass --resume to continue the run "
                    "or --overwrite to start it over."
                )
            self._delete_run_files()
        self.path.mkdir(parents=True, exist_ok=True)

    def remove_unfinished(self, *, resumable: bool = True) -> None:
        """Delete a run that failed before its first checkpoint: its files, then the folder
        if nothing else is in it. A failed start thus leaves nothing that needs --overwrite.

        A run that cannot be resumed (`resumable=False`: a baseline trains in one go) is
        deleted whatever it had written: a best.pt without the rest would look finished.
        """
        if resumable and (self.last.exists() or self.best.exists()):
            return
        self._delete_run_files()
        with contextlib.suppress(OSError):
            self.path.rmdir()

    def _delete_run_files(self) -> None:
        for name in RUN_FILES:
            with contextlib.suppress(FileNotFoundError):
                (self.path / name).unlink()
        # An old event log would mix its epochs into the new run's curves.
        shutil.rmtree(self.tensorboard, ignore_errors=True)

    def write_config(self, text: str) -> None:
        write_text_atomic(self.config, text)

    def write_split(self, record: Mapping[str, Any]) -> None:
        """split.json: the training scenes and their held-out areas (`data.split.split_record`)."""
        write_text_atomic(self.split, json.dumps(record, indent=1) + "\n")

    def read_split(self) -> Any:
        """The parsed split.json; a `DataError` naming the file when it is missing or broken."""
        try:
            return json.loads(self.split.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(
                f"{self.split}: no such file; is {self.path} a training run folder? Runs "
                "trained before run folders recorded their split need training again."
            ) from None
        except (OSError, json.JSONDecodeError) as error:
            raise DataError(f"{self.split}: cannot read the split ({error}).") from None

    def write_history(self, rows: Sequence[HistoryRow]) -> None:
        """history.csv with one row per epoch; columns are the union of the rows' keys."""
        columns = list(dict.fromkeys(key for row in rows for key in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _format(value) for key, value in row.items()})
        write_text_atomic(self.history, buffer.getvalue())

    def write_curves(self, rows: Sequence[HistoryRow], class_names: Sequence[str]) -> None:
        """curves.png: training and validation loss, and each class's validation Jaccard."""
        # Imported here: pyplot is slow to import and only this writer needs it.
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot

        epochs = [int(row["epoch"]) for row in rows]
        figure, (loss_axes, score_axes) = pyplot.subplots(1, 2, figsize=(11, 4))
        for key, label in (("train_loss", "training"), ("val_loss", "validation")):
            loss_axes.plot(epochs, [_number(row.get(key)) for row in rows], marker=".", label=label)
        loss_axes.set(xlabel="epoch", ylabel="loss", title="Loss")
        loss_axes.legend()
        for name in class_names:
            values = [_number(row.get(f"jaccard_{name}")) for row in rows]
            score_axes.plot(epochs, values, marker=".", label=name)
        means = [_number(row.get("val_jaccard")) for row in rows]
        score_axes.plot(epochs, means, color="black", linestyle="--", label="mean")
        score_axes.set(
            xlabel="epoch",
            ylabel="Jaccard (threshold 0.5)",
            title="Validation Jaccard",
            ylim=(0, 1),
        )
        score_axes.legend(fontsize="small", ncol=2)
        figure.tight_layout()
        with atomic_path(self.curves) as temporary:
            figure.savefig(temporary, format="png", dpi=100)
        pyplot.close(figure)

    @contextlib.contextmanager
    def logging_to_file(self) -> Iterator[None]:
        """Copy the library's log records to train.log (appended) while the block runs."""
        handler = logging.FileHandler(self.log, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        # The level stays the CLI's: with -q the file, like the console, gets warnings only.
        package_logger = logging.getLogger("spectraseg")
        package_logger.addHandler(handler)
        try:
            yield
        finally:
            package_logger.removeHandler(handler)
            handler.close()


def _format(value: float | int | str) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


def _number(value: float | int | str | None) -> float:
    try:
        return float(value) if value not in (None, "") else math.nan
    except ValueError:
        return math.nan
