"""The held-out truth of a run without test scenes, written strip by strip."""

from __future__ import annotations

import numpy as np
import rasterio
import torch

from spectraseg.config import load_config
from spectraseg.data.catalog import load_dataset
from spectraseg.data.split import held_out_areas
from spectraseg.pipeline import stages
from spectraseg.pipeline.stages import TRUTH_IGNORE, RunContext, prepare_held_out
from spectraseg.run_settings import RunSettings
from spectraseg.sample import generate_sample


def test_strips_write_the_truth_the_whole_scenes_give(tmp_path, monkeypatch) -> None:
    data = generate_sample(tmp_path / "data", scenes=2, size=96, seed=4)
    config = load_config(None, ["data.patch_size=32"])
    config = config.model_copy(update={"run": RunSettings(data=data)})
    monkeypatch.setattr(stages, "HELD_OUT_STRIP_ROWS", 40)  # strips that split the area
    outputs, summary = prepare_held_out(
        RunContext(config=config, out=tmp_path / "run", device=torch.device("cpu"), progress=False)
    )
    assert "held-out area of 2 training scene(s)" in summary

    scenes, _ = load_dataset(data, labels=config.data.labels)
    areas = held_out_areas(
        [s.name for s in scenes], [s.shape for s in scenes], settings=config.data.split, seed=0
    )
    for area in areas:
        scene = scenes[area.scene]
        assert scene.mask is not None
        expected = scene.mask.astype(np.uint8)
        expected[:, scene.ignored() | ~area.mask(scene.shape)] = TRUTH_IGNORE
        written = next(p for p in outputs if p.stem == scene.name)
        with rasterio.open(written) as dataset:
            assert np.array_equal(dataset.read(), expected)
