"""The class map `<stem>_classes.tif`: what a GIS shows as it is, class ids with their colours."""

from __future__ import annotations

import numpy as np
import rasterio
import torch

from spectraseg.io.prediction_raster import PredictionRaster
from spectraseg.predict.inputs import ModelInfo
from spectraseg.predict.raster import PredictSettings, predict_raster
from spectraseg.predict.tiling import TilingSettings

SMALL = PredictSettings(tiling=TilingSettings(window_px=16, overlap=0.5), tta=1)
NAMES = ("soil", "trees", "water")
IDS = (2, 5, 9)
COLOURS = ((200, 150, 100), (30, 160, 40), (20, 90, 220))


def three_classes(x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(4 * (torch.cat([x[:, :1], x[:, 1:2], 2 * x[:, 2:3]], dim=1) - 0.6))


def softmax_model(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(torch.cat([x[:, :1], x[:, 1:2], 2 * x[:, 2:3]], dim=1), dim=1)


def _read(path):
    with rasterio.open(path) as dataset:
        return dataset.read(1), dataset


def test_a_sigmoid_class_map_holds_the_most_probable_class_above_its_threshold(
    make_raster, tmp_path
):
    info = ModelInfo(class_names=NAMES, class_ids=IDS, class_colours=COLOURS, thresholds=(0.5,) * 3)
    outputs = predict_raster(three_classes, make_raster(), tmp_path, settings=SMALL, info=info)
    assert outputs.class_map == tmp_path / "scene_classes.tif"
    with rasterio.open(outputs.probabilities) as dataset:
        probs = dataset.read()
    with rasterio.open(outputs.class_map) as dataset:
        class_map = dataset.read(1)
        assert dataset.count == 1 and dataset.nodata == 255
    above = np.where(probs >= 0.5, probs, -1.0)
    expected = np.where((probs >= 0.5).any(axis=0), np.array(IDS)[np.argmax(above, axis=0)], 0)
    assert np.array_equal(class_map, expected)
    assert {0, 2, 5, 9} >= set(np.unique(class_map).tolist())
    assert len(set(np.unique(class_map).tolist())) >= 3


def test_the_class_map_carries_the_class_colours(make_raster, tmp_path):
    info = ModelInfo(class_names=NAMES, class_ids=IDS, class_colours=COLOURS)
    outputs = predict_raster(three_classes, make_raster(), tmp_path, settings=SMALL, info=info)
    with rasterio.open(outputs.class_map) as dataset:
        table = dataset.colormap(1)
    for class_id, colour in zip(IDS, COLOURS, strict=True):
        assert table[class_id] == (*colour, 255)


def test_a_softmax_class_map_and_mask_hold_class_ids_not_positions(make_raster, tmp_path):
    info = ModelInfo(class_names=NAMES, class_ids=IDS, class_colours=COLOURS, head="softmax")
    outputs = predict_raster(softmax_model, make_raster(), tmp_path, settings=SMALL, info=info)
    with rasterio.open(outputs.probabilities) as dataset:
        expected = np.array(IDS)[np.argmax(dataset.read(), axis=0)]
    for path in (outputs.class_map, outputs.mask):
        with rasterio.open(path) as dataset:
            assert np.array_equal(dataset.read(1), expected), path.name


def test_id_rasters_read_back_as_the_class_masks(make_raster, tmp_path):
    info = ModelInfo(class_names=NAMES, class_ids=IDS, class_colours=COLOURS, head="softmax")
    outputs = predict_raster(softmax_model, make_raster(), tmp_path, settings=SMALL, info=info)
    with rasterio.open(outputs.probabilities) as dataset:
        best = np.argmax(dataset.read(), axis=0)
    for path in (outputs.mask, outputs.class_map):
        with PredictionRaster(path) as raster:
            _, mask = raster.read_rows(0, raster.grid.height)
        assert mask is not None
        assert np.array_equal(np.argmax(mask, axis=0), best), path.name
        assert raster.info.class_ids == IDS


def test_a_qgis_style_names_each_class_beside_the_class_map(make_raster, tmp_path):
    info = ModelInfo(class_names=NAMES, class_ids=IDS, class_colours=COLOURS)
    predict_raster(three_classes, make_raster(), tmp_path, settings=SMALL, info=info)
    style = (tmp_path / "scene_classes.qml").read_text(encoding="utf-8")
    assert 'type="paletted"' in style
    assert '<paletteEntry value="5" color="#1ea028" alpha="255" label="trees"/>' in style


def test_a_plain_model_gets_ids_one_to_k_and_grey(make_raster, tmp_path):
    outputs = predict_raster(lambda x: x[:, :2], make_raster(), tmp_path, settings=SMALL)
    with rasterio.open(outputs.class_map) as dataset:
        assert set(np.unique(dataset.read(1)).tolist()) <= {0, 1, 2}
        assert dataset.colormap(1)[2] == (128, 128, 128, 255)


def test_outputs_have_internal_overviews_by_default(make_raster, tmp_path):
    outputs = predict_raster(lambda x: x[:, :2], make_raster(300, 520), tmp_path, settings=SMALL)
    for path in (outputs.probabilities, outputs.mask, outputs.class_map):
        assert path is not None
        with rasterio.open(path) as dataset:
            assert dataset.overviews(1) == [2, 4], path.name
    with rasterio.open(outputs.mask) as dataset:
        assert dataset.tags(ns="rio_overview")["resampling"] == "nearest"
    with rasterio.open(outputs.probabilities) as dataset:
        assert dataset.tags(ns="rio_overview")["resampling"] == "average"


def test_overviews_can_be_left_out(make_raster, tmp_path):
    settings = SMALL.model_copy(update={"overviews": False})
    outputs = predict_raster(lambda x: x[:, :2], make_raster(300, 520), tmp_path, settings=settings)
    with rasterio.open(outputs.probabilities) as dataset:
        assert dataset.overviews(1) == []


def test_a_cog_class_map_keeps_its_colour_table(make_raster, tmp_path):
    info = ModelInfo(class_names=NAMES, class_ids=IDS, class_colours=COLOURS)
    settings = SMALL.model_copy(update={"cog": True})
    outputs = predict_raster(three_classes, make_raster(), tmp_path, settings=settings, info=info)
    with rasterio.open(outputs.class_map) as dataset:
        assert dataset.colormap(1)[9] == (*COLOURS[2], 255)


def test_polygons_get_a_qgis_style_in_the_class_colours(make_raster, tmp_path):
    from spectraseg.postprocess.vectorize import vectorize

    info = ModelInfo(class_names=NAMES, class_ids=IDS, class_colours=COLOURS)
    outputs = predict_raster(three_classes, make_raster(), tmp_path, settings=SMALL, info=info)
    assert outputs.mask is not None
    vectorize(outputs.mask, tmp_path / "scene.geojson")
    style = (tmp_path / "scene.qml").read_text(encoding="utf-8")
    assert 'type="categorizedSymbol" attr="class_name"' in style
    assert '<category value="trees" symbol="1" label="trees" render="true"/>' in style
    assert 'name="color" value="30,160,40,255"' in style
