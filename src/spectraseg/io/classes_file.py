"""Reading and writing `classes.yaml` (the class list itself is `spectraseg.classes`)."""

from __future__ import annotations

import os

import yaml

from spectraseg.classes import ClassList, classes_document, classes_from_document
from spectraseg.errors import LabelError
from spectraseg.io.atomic import write_text_atomic
from spectraseg.io.yaml_file import read_yaml

__all__ = ["load_classes", "save_classes"]

MISSING_HINT = (
    'Write one next to the labels, e.g. \'classes: [{name: building, id: 1, colour: "#d62728"}, '
    "{name: water, id: 2}]', or let `spectraseg init DATA_DIR --out DIR` write it from the "
    "label column."
)


def load_classes(path: str | os.PathLike[str]) -> ClassList:
    """Read and validate a classes.yaml."""
    raw = read_yaml(path, "classes", error=LabelError, hint=MISSING_HINT)
    return classes_from_document(raw, str(path))


def save_classes(
    classes: ClassList, path: str | os.PathLike[str], *, overwrite: bool = True
) -> None:
    """Write a classes.yaml that `load_classes` reads back unchanged."""
    text = yaml.safe_dump(classes_document(classes), sort_keys=False)
    write_text_atomic(path, text, overwrite=overwrite)
