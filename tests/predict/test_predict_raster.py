"""`predict_raster`: streamed from disk, equal to the in-memory reference, outputs as promised."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import rasterio
import torch

from spectraseg.errors import BandError, OutputExistsError, RasterError, SpectrasegWarning
from spectraseg.predict import inputs as inputs_module
from spectraseg.predict.inputs import ModelInfo
from spectraseg.predict.raster import (
    PredictSettings,
    predict_raster,
)
from spectraseg.predict.tiling import TilingSettings

SMALL = PredictSettings(tiling=TilingSettings(window_px=16, overlap=0.5), tta=8)


def _read(path):
    """The pixels of a raster and its profile, with its tags."""
    with rasterio.open(path) as dataset:
        return dataset.read(), {**dataset.profile, "tags": dataset.tags()}


@pytest.mark.parametrize(
    ("shape", "tiling"),
    [
        ((37, 53), TilingSettings(window_px=16, overlap=0.5)),
        ((53, 37), TilingSettings(window_px=12, overlap=0.25)),
        ((70, 9), TilingSettings(window_px=16, overlap=0.75)),
        ((5, 6), TilingSettings(window_px=32, overlap=0.5)),
        ((41, 40), TilingSettings(window_px=16, overlap=0.5, centre_crop_px=3)),
        ((45, 38), TilingSettings(window_px=16, overlap=0.5, centre_crop_px=4, align_px=8)),
    ],
    ids=str,
)
@pytest.mark.parametrize("batch_size", [1, 5])
def test_streaming_matches_the_in_memory_reference(
    predict_array_reference, shape, tiling, batch_size, conv3x3, make_raster, tmp_path
):
    model = conv3x3(3, 2)
    path = make_raster(*shape, holes=shape[0] > 20)
    with rasterio.open(path) as dataset:
        image = dataset.read().astype(np.float32)
        valid = dataset.read_masks(1) > 0
    settings = PredictSettings(tiling=tiling, tta=4, batch_size=batch_size)
    outputs = predict_raster(model, path, tmp_path / "out", settings=settings)
    streamed, _ = _read(outputs.probabilities)
    expected = predict_array_reference(model, image, valid, settings=settings)
    assert np.array_equal(np.isnan(streamed), np.isnan(expected))
    assert np.nanmax(np.abs(streamed - expected)) < 1e-5


def test_reading_in_narrow_column_blocks_changes_nothing(
    predict_array_reference, conv3x3, make_raster, tmp_path, monkeypatch
):
    # Rasters wider than the read block are read a block of columns at a time.
    monkeypatch.setattr(inputs_module, "READ_BLOCK_COLUMNS", 20)
    model = conv3x3(3, 2)
    path = make_raster(29, 75, holes=True)
    with rasterio.open(path) as dataset:
        image = dataset.read().astype(np.float32)
        valid = dataset.read_masks(1) > 0
    settings = PredictSettings(tiling=TilingSettings(window_px=16, overlap=0.5), tta=2)
    outputs = predict_raster(model, path, tmp_path / "out", settings=settings)
    streamed, _ = _read(outputs.probabilities)
    expected = predict_array_reference(model, image, valid, settings=settings)
    assert np.nanmax(np.abs(streamed - expected)) < 1e-5
    assert np.array_equal(np.isnan(streamed), np.isnan(expected))


def test_outputs_sit_on_the_input_grid_with_kind_tags_and_class_descriptions(
    pointwise, make_raster, tmp_path
):
    path = make_raster(37, 53)
    info = ModelInfo(class_names=("building", "water"), thresholds=(0.4, 0.6))
    outputs = predict_raster(pointwise(3, 2), path, tmp_path / "out", settings=SMALL, info=info)
    assert outputs.probabilities == tmp_path / "out" / "scene_probs.tif"
    assert outputs.mask == tmp_path / "out" / "scene_mask.tif"
    with rasterio.open(path) as source:
        for output, kind in ((outputs.probabilities, "probabilities"), (outputs.mask, "mask")):
            with rasterio.open(output) as dataset:
                assert (dataset.width, dataset.height) == (source.width, source.height)
                assert dataset.crs == source.crs
                assert dataset.transform == source.transform
                assert dataset.tags()["SPECTRASEG_KIND"] == kind
                assert dataset.tags()["SPECTRASEG_THRESHOLDS"] == "[0.4, 0.6]"
                assert dataset.descriptions == ("building", "water")
                assert dataset.count == 2


def test_multi_label_mask_applies_each_class_threshold(pointwise, make_raster, tmp_path):
    info = ModelInfo(class_names=("a", "b"), thresholds=(0.3, 1.0))
    outputs = predict_raster(
        pointwise(3, 2), make_raster(), tmp_path / "out", settings=SMALL, info=info
    )
    probs, _ = _read(outputs.probabilities)
    mask, profile = _read(outputs.mask)
    assert profile["dtype"] == "uint8"
    assert np.array_equal(mask[0], (probs[0] >= 0.3).astype(np.uint8))
    assert not mask[1].any()  # a threshold of 1 selects nothing


def test_multi_class_mask_is_one_band_of_class_ids(make_raster, tmp_path):
    def softmax_model(x):
        return torch.softmax(torch.cat([x[:, :1], x[:, 1:2], 2 * x[:, 2:3]], dim=1), dim=1)

    info = ModelInfo(class_names=("soil", "trees", "water"), class_ids=(2, 5, 9), head="softmax")
    outputs = predict_raster(
        softmax_model, make_raster(), tmp_path / "out", settings=SMALL, info=info
    )
    probs, _ = _read(outputs.probabilities)
    mask, profile = _read(outputs.mask)
    assert mask.shape == (1, *probs.shape[1:])
    assert np.array_equal(mask[0], np.array([2, 5, 9])[np.argmax(probs, axis=0)])
    assert profile["tags"]["SPECTRASEG_KIND"] == "mask"


def test_nodata_holes_in_the_input_are_nodata_in_both_outputs(pointwise, make_raster, tmp_path):
    path = make_raster(37, 53, holes=True)
    outputs = predict_raster(pointwise(3, 2), path, tmp_path / "out", settings=SMALL)
    probs, _ = _read(outputs.probabilities)
    mask, profile = _read(outputs.mask)
    with rasterio.open(path) as source:
        invalid = source.read_masks(1) == 0
    assert invalid.any()
    assert np.isnan(probs[:, invalid]).all()
    assert not np.isnan(probs[:, ~invalid]).any()
    assert (mask[:, invalid] == 255).all() and profile["nodata"] == 255
    assert set(np.unique(mask[:, ~invalid])) <= {0, 1}


def test_uint8_probabilities_hold_254_p_with_255_as_nodata(pointwise, make_raster, tmp_path):
    path = make_raster(37, 53, holes=True)
    floats = predict_raster(pointwise(3, 2), path, tmp_path / "f", settings=SMALL)
    settings = SMALL.model_copy(update={"dtype": "uint8"})
    small = predict_raster(pointwise(3, 2), path, tmp_path / "u", settings=settings)
    probs, _ = _read(floats.probabilities)
    stored, profile = _read(small.probabilities)
    assert profile["dtype"] == "uint8" and profile["nodata"] == 255
    assert profile["tags"]["SPECTRASEG_PROBABILITY_SCALE"] == "254"
    valid = ~np.isnan(probs)
    assert np.abs(stored[valid] / 254 - probs[valid]).max() <= 0.5 / 254 + 1e-6
    assert (stored[~valid] == 255).all()


def test_bands_are_matched_by_name_whatever_their_order_in_the_file(make_raster, tmp_path):
    path = make_raster(band_names=("red", "blue", "green"))
    with rasterio.open(path) as dataset:
        red = dataset.read(1)
    info = ModelInfo(band_names=("blue", "green", "red"))
    settings = SMALL.model_copy(update={"tta": 1})
    outputs = predict_raster(
        lambda x: x[:, 2:3], path, tmp_path / "out", settings=settings, info=info
    )
    probs, _ = _read(outputs.probabilities)
    assert np.allclose(probs[0], red)


def test_a_raster_without_band_names_is_taken_in_order_with_one_warning(make_raster, tmp_path):
    path = make_raster(band_names=None, count=3, name="unnamed.tif")
    info = ModelInfo(band_names=("blue", "green", "red"))
    with pytest.warns(SpectrasegWarning, match="unnamed.tif") as caught:
        predict_raster(lambda x: x[:, :1], path, tmp_path / "out", settings=SMALL, info=info)
    assert len([w for w in caught if issubclass(w.category, SpectrasegWarning)]) == 1


def test_a_missing_band_names_the_file_the_expected_and_the_found_bands(make_raster, tmp_path):
    path = make_raster(band_names=("blue", "green", "nir"), name="field.tif")
    info = ModelInfo(band_names=("blue", "green", "red"))
    with pytest.raises(
        BandError,
        match=r"field\.tif.*missing red.*expected blue, green, red.*"
        r"found blue, green, nir",
    ):
        predict_raster(lambda x: x[:, :1], path, tmp_path / "out", settings=SMALL, info=info)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_unnamed_raster_with_the_wrong_band_count_is_refused(make_raster, tmp_path):
    path = make_raster(band_names=None, count=4, name="four.tif")
    info = ModelInfo(band_names=("blue", "green", "red"))
    with pytest.raises(BandError, match=r"four\.tif.*4 bands.*3 are expected"):
        predict_raster(lambda x: x[:, :1], path, tmp_path / "out", settings=SMALL, info=info)


def test_a_pixel_size_far_from_the_training_resolution_warns(make_raster, tmp_path):
    path = make_raster(pixel_size=20.0)
    info = ModelInfo(resolution=(10.0, 10.0))
    with pytest.warns(SpectrasegWarning, match="100% off the training resolution"):
        predict_raster(lambda x: x[:, :1], path, tmp_path / "out", settings=SMALL, info=info)


def test_a_pixel_size_near_the_training_resolution_is_quiet(make_raster, tmp_path):
    path = make_raster(pixel_size=10.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpectrasegWarning)
        predict_raster(
            lambda x: x[:, :1],
            path,
            tmp_path / "out",
            settings=SMALL,
            info=ModelInfo(resolution=(10.0, 10.0)),
        )


def test_resample_puts_the_input_on_the_training_resolution(make_raster, tmp_path):
    path = make_raster(40, 60, pixel_size=20.0)
    outputs = predict_raster(
        lambda x: x[:, :1],
        path,
        tmp_path / "out",
        settings=SMALL,
        info=ModelInfo(resolution=(10.0, 10.0)),
        resample=True,
    )
    with rasterio.open(outputs.probabilities) as dataset:
        assert (dataset.height, dataset.width) == (80, 120)
        assert dataset.res == (10.0, 10.0)


def test_an_existing_output_without_overwrite_is_refused_before_any_work(make_raster, tmp_path):
    path = make_raster()
    out = tmp_path / "out"
    out.mkdir()
    (out / "scene_mask.tif").write_text("earlier result")
    calls = []

    def model(x):
        calls.append(1)
        return x[:, :1]

    with pytest.raises(OutputExistsError, match=r"scene_mask\.tif.*--overwrite"):
        predict_raster(model, path, out, settings=SMALL)
    assert not calls
    assert sorted(p.name for p in out.iterdir()) == ["scene_mask.tif"]
    assert (out / "scene_mask.tif").read_text() == "earlier result"


def test_overwrite_replaces_existing_outputs(make_raster, tmp_path):
    path = make_raster()
    predict_raster(lambda x: x[:, :1], path, tmp_path / "out", settings=SMALL)
    predict_raster(lambda x: x[:, 1:2], path, tmp_path / "out", settings=SMALL, overwrite=True)


def test_an_output_folder_that_cannot_be_created_is_a_raster_error(make_raster, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(RasterError, match="a_file"):
        predict_raster(lambda x: x[:, :1], make_raster(), blocker / "out", settings=SMALL)


def test_a_model_failing_midway_leaves_no_output_file(make_raster, tmp_path):
    calls = []

    def flaky(x):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("model crashed")
        return x[:, :1]

    settings = SMALL.model_copy(update={"tta": 1, "batch_size": 1})
    with pytest.raises(RuntimeError, match="crashed"):
        predict_raster(flaky, make_raster(200, 300), tmp_path / "out", settings=settings)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_model_returning_the_wrong_shape_is_named(make_raster, tmp_path):
    with pytest.raises(ValueError, match="the model returned"):
        predict_raster(
            lambda x: x[:, :1, :4, :4],
            make_raster(),
            tmp_path / "out",
            settings=SMALL,
            info=ModelInfo(class_names=("a",)),
        )


def test_cloud_optimized_outputs_have_overviews(pointwise, make_raster, tmp_path):
    settings = SMALL.model_copy(update={"cog": True, "tta": 1})
    outputs = predict_raster(
        pointwise(3, 2), make_raster(600, 530), tmp_path / "out", settings=settings
    )
    with rasterio.open(outputs.probabilities) as dataset:
        assert dataset.overviews(1)
        assert dataset.profile["tiled"]


def test_the_progress_bar_reports_windows_per_second_on_stderr(make_raster, tmp_path, capsys):
    predict_raster(
        lambda x: x[:, :1], make_raster(), tmp_path / "out", settings=SMALL, progress=True
    )
    assert "windows/s" in capsys.readouterr().err
