"""`spectraseg init DATA_DIR --out DIR`: a starting config and classes.yaml for a data folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from spectraseg.data.survey import DataSurvey, survey_data
from spectraseg.io.atomic import check_writable, write_text_atomic
from spectraseg.io.classes_file import save_classes
from spectraseg.io.lock import folder_lock

CONFIG_FILE = "config.yaml"
CLASSES_FILE = "classes.yaml"
# The first run is a look at what the data gives, not the final model: bound its time.
FIRST_RUN_MINUTES = 20
SHOWN_VALUES = 8


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "init",
        help="inspect a data folder as delivered and write a starting config and classes.yaml",
        description="Find the scenes of DATA_DIR (band files of one scene in a folder, "
        "Sentinel-2 IMG_DATA and Landsat naming, several scenes, a vector file for all or one "
        "per scene, or masks), print what was found (scenes, bands and resolutions, label "
        "columns with their value counts, CRS), and write DIR/classes.yaml and "
        "DIR/config.yaml, with which `spectraseg train --config DIR/config.yaml --out RUN` "
        "trains with no other flag. DATA_DIR is only read.",
    )
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR")
    parser.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="the vector file labelling every scene (default: the one at DATA_DIR's top; of "
        "several, the one with the most features)",
    )
    parser.add_argument(
        "--class-column",
        metavar="NAME",
        help="the label column holding the classes (default: class, fclass, label, building, "
        "... whichever is there, else the column with the fewest values)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="folder for the two files"
    )


def describe(survey: DataSurvey) -> list[str]:
    """What `init` prints: scenes, bands and resolutions, label files and columns, classes."""
    lines = [f"{survey.root}: {len(survey.scenes)} scene(s)"]
    for scene in survey.scenes:
        sizes = sorted({size for _, size in scene.file_resolutions})
        lines.append(
            f"  {scene.name}: {scene.shape[0]} x {scene.shape[1]} px, {scene.crs}, "
            f"{len(scene.band_names)} band(s) ({', '.join(scene.band_names)}) from "
            f"{len(scene.file_resolutions)} file(s) at {', '.join(f'{s:g}' for s in sizes)}"
        )
    chosen = survey.labels.file
    for summary in survey.label_files:
        mark = "labels" if summary.path.resolve() == chosen else "not used"
        lines.append(
            f"{summary.path.name} ({mark}): {summary.features} features, {summary.crs}; "
            "columns that could hold classes:"
        )
        for column in summary.columns:
            values = ", ".join(f"{v} {n}" for v, n in column.counts[:SHOWN_VALUES])
            more = (
                f", ... ({len(column.counts)} values)" if len(column.counts) > SHOWN_VALUES else ""
            )
            used = " <- classes" if mark == "labels" and column.name == survey.labels.column else ""
            lines.append(f"  {column.name}: {values}{more}{used}")
    lines.append("classes: " + ", ".join(f"{c.id} {c.name}" for c in survey.classes.classes))
    return lines


def starting_config(survey: DataSurvey, classes_file: Path) -> str:
    """DIR/config.yaml: the data folder, its labels and classes, and a bounded first run."""
    labels: dict[str, Any] = {"column": survey.labels.column}
    if survey.labels.file is not None:
        labels = {"file": str(survey.labels.file), **labels}
    labels["classes_file"] = str(classes_file.resolve())
    document = {
        "run": {"data": str(survey.root.resolve())},
        "data": {"labels": labels},
        "train": {"max_minutes": FIRST_RUN_MINUTES},
    }
    header = (
        f"# Written by `spectraseg init {survey.root}`: a starting config. Train with\n"
        f"#   spectraseg train --config {classes_file.parent / CONFIG_FILE} --out runs/first\n"
        "# Every other setting has its default (`spectraseg config` shows them all).\n"
    )
    return header + yaml.safe_dump(document, sort_keys=False)


def run(args: argparse.Namespace) -> int:
    with folder_lock(args.out):
        config_path, classes_path = args.out / CONFIG_FILE, args.out / CLASSES_FILE
        for path in (config_path, classes_path):
            check_writable(path, overwrite=args.overwrite)
        survey = survey_data(args.data_dir, labels_file=args.labels, column=args.class_column)
        for line in describe(survey):
            print(line)
        save_classes(survey.classes, classes_path, overwrite=args.overwrite)
        write_text_atomic(
            config_path, starting_config(survey, classes_path), overwrite=args.overwrite
        )
    print(f"wrote {classes_path} and {config_path}; edit the classes' names and colours freely")
    print(f"next: spectraseg train --config {config_path} --out runs/first")
    return 0
