"""`spectraseg search --per-class`: the best config trained once per class, predicted as one."""

from __future__ import annotations

import pytest
import rasterio

from spectraseg.cli.main import main
from spectraseg.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow


def test_per_class_after_a_search_predicts_through_its_ensemble_with_every_class(
    sample, tiny_config, tiny_space, tmp_path
) -> None:
    out = tmp_path / "search"
    args = ["-q", "search", "--data", str(sample), "--out", str(out), "--config", str(tiny_config)]
    assert main([*args, "--space", str(tiny_space), "--trials", "1", "--per-class"]) == 0

    per_class = out / "per-class"
    assert (per_class / "ensemble.yaml").is_file()
    names = [path.name for path in sorted((per_class / "classes").iterdir())]
    assert len(names) == 6
    assert all(load_checkpoint(per_class / "classes" / n).card.class_names == (n,) for n in names)
    predictions = tmp_path / "pred"
    scene = sample / "images" / "scene_000.tif"
    assert main(["-q", "predict", str(per_class), str(scene), "--out", str(predictions)]) == 0
    with rasterio.open(predictions / "scene_000_probs.tif") as dataset:
        assert sorted(dataset.descriptions) == sorted(names)
