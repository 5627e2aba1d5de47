"""Makes report-overlay.png, the README's picture of a report's overlay section.

The built-in sample (one 160 px test scene), a U-Net trained for 45 seconds and the random-forest
baseline, through `spectraseg run`; then the overlay section alone, opened in headless Chromium
(Debian's `chromium`) and captured. Run from the repository root:

    python docs/figures/make_report_overlay.py [WORK_DIR]
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from spectraseg.pipeline.runner import run_pipeline
from spectraseg.report.build import write_report
from spectraseg.report.collect import pipeline_sources
from spectraseg.sample import generate_sample

OUT = Path(__file__).resolve().parent / "report-overlay.png"


def main(work: Path) -> None:
    generate_sample(work / "data", scenes=4, size=160, seed=0, overwrite=True)
    generate_sample(work / "test", scenes=1, size=160, seed=1000, overwrite=True)
    config = {
        "run": {
            "out": "run",
            "data": "data",
            "test": "test",
            "models": {
                "unet": {"set": ["train.max_minutes=0.75", "train.epochs=40"]},
                "random-forest": {"set": ["model.name=random-forest"]},
            },
        },
        "data": {"patch_size": 64},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    run_pipeline(work / "config.yaml")
    sources = pipeline_sources(work / "run")
    # The overlays alone: without scores, history and settings only they and the errors remain.
    shown = [
        dataclasses.replace(s, scores=None, history=None, thresholds=None, settings=None,
                            provenance={}, search_figures=())
        for s in sources
    ]  # fmt: skip
    page = write_report(shown, work / "overlay.html", title="Prediction and truth")
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--window-size=1040,760", f"--screenshot={OUT}", page.as_uri()],
        check=True,
    )  # fmt: skip
    print(OUT)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()))
