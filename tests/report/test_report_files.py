"""Reports from output folders: `evaluate --out DIR` writes one, `spectraseg report` rebuilds and
compares them, large scenes are shown downsampled, and a wrong folder is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from spectraseg.cli.main import main
from spectraseg.io.geotiff import write_raster
from spectraseg.io.rasters import grid_of
from spectraseg.sample import generate_sample


@pytest.fixture(scope="module")
def test_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 48 px sample scenes (images, masks, classes.yaml)."""
    return generate_sample(tmp_path_factory.mktemp("test"), scenes=2, size=48, seed=5)


def write_predictions(test_data: Path, folder: Path, *, noise: float) -> Path:
    """<scene>_probs.tif near the truth: one-hot truth blurred by uniform noise."""
    names = [line.split("name:")[1].split(",")[0].strip() for line in
             (test_data / "classes.yaml").read_text().splitlines() if "name:" in line]  # fmt: skip
    rng = np.random.default_rng(0)
    for mask in sorted((test_data / "masks").glob("*.tif")):
        with rasterio.open(mask) as dataset:
            ids, grid = dataset.read(1), grid_of(dataset)
        probs = np.stack([(ids == k + 1) * 0.8 + 0.1 for k in range(len(names))])
        probs = np.clip(probs + rng.uniform(-noise, noise, probs.shape), 0, 1).astype(np.float32)
        tags = {
            "SPECTRASEG_KIND": "probabilities",
            "SPECTRASEG_CLASSES": json.dumps(names),
            "SPECTRASEG_THRESHOLDS": json.dumps([0.5] * len(names)),
        }
        target = folder / f"{mask.stem}_probs.tif"
        write_raster(target, probs, grid, band_names=names, nodata=float("nan"), tags=tags)
    return folder


@pytest.fixture(scope="module")
def evaluations(test_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two `evaluate --out` folders: a good model and a noisier one."""
    root = tmp_path_factory.mktemp("evaluations")
    folders = []
    for name, noise in (("good", 0.2), ("noisy", 0.45)):
        predictions = write_predictions(test_data, root / f"{name}_predictions", noise=noise)
        out = root / name
        args = ["-q", "evaluate", "--pred", str(predictions), "--truth", str(test_data / "masks")]
        assert main([*args, "--out", str(out)]) == 0
        folders.append(out)
    return folders


def sections(page: Path) -> list[str]:
    import re

    return re.findall(r'<section id="([a-z]+)">', page.read_text(encoding="utf-8"))


def test_evaluate_writes_a_report_of_its_scenes(evaluations: list[Path]) -> None:
    page = evaluations[0] / "report.html"
    assert sections(page) == ["scores", "overlays", "errors", "thresholds", "settings"]
    text = page.read_text(encoding="utf-8")
    assert "scene_000" in text and "scene_001" in text
    assert "true colour (red, green, blue)" in text  # the images were found beside the truth


def test_report_compares_folders_side_by_side(evaluations: list[Path], tmp_path, capsys) -> None:
    target = tmp_path / "compare.html"
    good, noisy = evaluations
    assert main(["report", str(good), "--compare", str(noisy), "--out", str(target)]) == 0
    assert f"report: {target}" in capsys.readouterr().out
    text = target.read_text(encoding="utf-8")
    assert text.count('<figure class="scene toggle"') == 4  # 2 scenes × 2 evaluations
    assert ">good</th>" in text and ">noisy</th>" in text
    assert (tmp_path / "compare_figures" / "overlay-noisy-scene_001-truth.png").is_file()


def test_large_scenes_are_shown_within_the_pixel_budget(evaluations, tmp_path) -> None:
    target = tmp_path / "small.html"
    assert main(["report", str(evaluations[0]), "--max-pixels", "300", "--out", str(target)]) == 0
    with rasterio.open(tmp_path / "small_figures" / "overlay-good-scene_000-truth.png") as png:
        assert png.height * png.width <= 300 and png.height == png.width


def test_a_folder_that_is_no_output_is_a_one_line_error(tmp_path, capsys) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a run or evaluation folder" in err[0] and str(tmp_path) in err[0]
