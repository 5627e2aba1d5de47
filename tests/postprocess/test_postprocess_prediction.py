"""Reading prediction rasters back: kinds, class names, id bands, nodata."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from spectraseg.classes import ClassList, ClassSpec
from spectraseg.errors import LabelError, RasterError
from spectraseg.grid import Grid
from spectraseg.io.geotiff import write_raster
from spectraseg.io.prediction_raster import PredictionRaster, scene_name

Factory = Callable[..., Path]
PIXELS = Grid(None, Affine.identity(), 4, 2)
CLASSES = ClassList(classes=(ClassSpec(name="road", id=2), ClassSpec(name="water", id=5)))


def test_scene_names_drop_probs_and_mask() -> None:
    assert scene_name("a/scene_1_probs.tif") == "scene_1"
    assert scene_name("scene_1_mask.tif") == "scene_1"
    assert scene_name("labels/scene_1.geojson") == "scene_1"


def test_float_probabilities_keep_nan_as_nodata(tmp_path: Path, write_prediction: Factory) -> None:
    probs = np.full((2, 2, 4), 0.25, np.float32)
    probs[:, 0, 0] = np.nan
    path = write_prediction(
        tmp_path / "s_probs.tif", probs, class_names=["a", "b"], thresholds=[0.1, 0.2]
    )
    with PredictionRaster(path) as raster:
        read, mask = raster.read_rows(0, 2)
        assert mask is None and read is not None and np.isnan(read[:, 0, 0]).all()
        assert raster.info.tuned_thresholds == (0.1, 0.2)
        assert not raster.read_valid()[0, 0] and raster.read_valid()[1, 1]


def test_an_untagged_id_band_holds_classes_yaml_ids(tmp_path: Path) -> None:
    path = tmp_path / "scene.tif"
    write_raster(
        path, np.array([[0, 2, 5, 5], [2, 0, 0, 9]], np.uint8), PIXELS, band_names=["class_id"]
    )
    with PredictionRaster(path, classes=CLASSES) as raster:
        assert raster.info.kind == "mask" and raster.info.class_names == ("road", "water")
        _, mask = raster.read_rows(0, 2)
    assert mask is not None
    assert mask[0].astype(int).tolist() == [[0, 1, 0, 0], [1, 0, 0, 0]]
    assert mask[1].astype(int).tolist() == [[0, 0, 1, 1], [0, 0, 0, 0]]


def test_255_is_nodata_only_where_the_raster_declares_it(tmp_path: Path) -> None:
    path = tmp_path / "roads.tif"  # like SpaceNet's 0/255 road mask
    write_raster(path, np.array([[0, 255, 255, 0]] * 2, np.uint8), PIXELS)
    one = ClassList(classes=(ClassSpec(name="road", id=1),))
    with PredictionRaster(path, classes=one) as raster:
        _, mask = raster.read_rows(0, 2)
    assert mask is not None and mask.sum() == 4


def test_class_names_must_match_the_classes_given(
    tmp_path: Path, write_prediction: Factory
) -> None:
    path = write_prediction(
        tmp_path / "s_mask.tif",
        np.zeros((2, 2, 4)),
        kind="mask",
        class_names=["road", "watr"],
        grid=PIXELS,
    )
    with pytest.raises(LabelError, match=r"class 'watr' is not in the classes file \(did you mean"):
        PredictionRaster(path, classes=CLASSES)


def test_an_unknown_kind_tag_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "s.tif"
    write_raster(
        path,
        np.zeros((1, 2, 4), np.float32),
        PIXELS,
        band_names=["a"],
        tags={"SPECTRASEG_KIND": "logits"},
    )
    with pytest.raises(RasterError, match="SPECTRASEG_KIND='logits'"):
        PredictionRaster(path)
