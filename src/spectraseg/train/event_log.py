"""TensorBoard's event log of a training run: `RUN/tensorboard/`, one point per epoch.

Written when the `tensorboard` package is installed (`pip install "spectraseg[tensorboard]"`),
by the process that writes the run folder (rank 0). The scalars are those of `history.csv`:
the training and validation loss, the validation mean Jaccard (at 0.5 and with tuned
thresholds), each class's Jaccard and the learning rate, with the epoch as the step. A resumed
run appends; the epochs it trains again (those after `last.pt`) are purged from the older
events so each epoch shows once. Unlike the run's other files the log is a stream, not written
atomically: a killed run leaves the epochs written so far, each flushed when it ends.

`tensorboard --logdir RUN/tensorboard` (or a folder of runs) shows it.
"""

from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from spectraseg.train.run_folder import HistoryRow

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["EventLog", "open_event_log"]

log = logging.getLogger(__name__)

# history.csv column -> TensorBoard tag; classes add "jaccard/<name>".
_TAGS = {
    "train_loss": "loss/train",
    "val_loss": "loss/validation",
    "val_jaccard": "jaccard/mean",
    "val_jaccard_tuned": "jaccard/mean_tuned",
    "learning_rate": "learning_rate",
}


class EventLog:
    """Adds each epoch's history row to the event log; without tensorboard it does nothing."""

    def __init__(self, writer: SummaryWriter | None) -> None:
        self._writer = writer

    @property
    def writing(self) -> bool:
        return self._writer is not None

    def add_epoch(self, row: HistoryRow, class_names: Sequence[str]) -> None:
        """The row's scalars at step `row["epoch"]`, flushed (a killed run keeps them)."""
        if self._writer is None:
            return
        epoch = int(row["epoch"])
        tags = {**_TAGS, **{f"jaccard_{name}": f"jaccard/{name}" for name in class_names}}
        for column, tag in tags.items():
            value = row.get(column)
            # A NaN (no training loss on a validation-only pass) would draw a gap at best.
            if isinstance(value, int | float) and math.isfinite(value):
                self._writer.add_scalar(tag, float(value), global_step=epoch)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def open_event_log(folder: Path, *, first_epoch: int = 1) -> EventLog:
    """The event log in `folder`, or one that writes nothing when tensorboard is missing.

    Args:
        first_epoch: the first epoch this session writes; older events from that epoch on
            (written by a run killed before its `last.pt` caught up) are purged.
    """
    if importlib.util.find_spec("tensorboard") is None:
        log.info(
            "no TensorBoard event log: the tensorboard package is not installed "
            '(pip install "spectraseg[tensorboard]")'
        )
        return EventLog(None)
    try:
        # Imported here: it loads tensorboard and protobuf, which only this writer needs.
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:  # installed but broken, e.g. an incompatible protobuf
        log.warning("no TensorBoard event log: %s", error)
        return EventLog(None)
    purge_step = first_epoch if first_epoch > 1 else None
    writer = SummaryWriter(log_dir=str(folder), purge_step=purge_step)
    return EventLog(writer)
