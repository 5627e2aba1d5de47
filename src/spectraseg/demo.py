"""The demo: the built-in sample taken through every stage that exists, top to bottom."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from spectraseg.classes import load_classes
from spectraseg.io.atomic import write_text_atomic
from spectraseg.io.rasters import open_stack
from spectraseg.sample import generate_sample

log = logging.getLogger(__name__)


def prepare_sample(out_dir: Path, *, scenes: int, size: int, overwrite: bool) -> Path:
    """The sample under out_dir/data, generated once and reused when it is already there."""
    data = out_dir / "data"
    if (data / "classes.yaml").exists() and not overwrite:
        log.info("using the sample already in %s", data)
        return data
    return generate_sample(data, scenes=scenes, size=size, seed=0, overwrite=True)


def summarize_sample(data: Path) -> dict[str, Any]:
    """Scenes, bands and class shares of a sample folder."""
    import rasterio

    classes = load_classes(data / "classes.yaml")
    images = sorted((data / "images").glob("*.tif"))
    counts = np.zeros(max(classes.ids) + 1)
    for mask_path in sorted((data / "masks").glob("*.tif")):
        with rasterio.open(mask_path) as mask:
            counts += np.bincount(mask.read(1).ravel(), minlength=counts.size)[: counts.size]
    with open_stack(images[0]) as stack:
        bands = list(stack.band_names)
        grid = stack.grid.describe()
    shares = {spec.name: float(counts[spec.id] / counts.sum()) for spec in classes.classes}
    return {"scenes": len(images), "bands": bands, "grid": grid, "class_shares": shares}


def run_demo(out_dir: Path, *, minutes: float, scenes: int, size: int, overwrite: bool) -> Path:
    """Generate the sample and summarize it; later stages join as they land."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = prepare_sample(out_dir, scenes=scenes, size=size, overwrite=overwrite)
    summary = summarize_sample(data)
    write_text_atomic(out_dir / "sample_summary.json", json.dumps(summary, indent=2))
    print(f"sample: {summary['scenes']} scenes, {len(summary['bands'])} bands, {summary['grid']}")
    for name, share in summary["class_shares"].items():
        print(f"  {name:<10} {share:6.2%}")
    return out_dir
