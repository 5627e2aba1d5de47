"""GDAL virtual paths (`/vsizip/`, `/vsicurl/`, `/vsis3/`) are read like files, not refused."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio

from spectraseg.cli.main import main
from spectraseg.errors import RasterError
from spectraseg.io.rasters import gdal_path, open_stack
from spectraseg.predict.raster import PredictSettings, predict_raster
from spectraseg.predict.tiling import TilingSettings

SMALL = PredictSettings(tiling=TilingSettings(window_px=16, overlap=0.5), tta=1)


def zipped(raster: Path) -> str:
    archive = raster.with_suffix(".zip")
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(raster, arcname=f"delivery/{raster.name}")
    return f"/vsizip/{archive}/delivery/{raster.name}"


def test_a_raster_inside_a_zip_reads_as_the_file_itself(make_raster) -> None:
    raster = make_raster()
    with open_stack(zipped(raster)) as stack, open_stack(raster) as plain:
        image, valid = stack.read()
        expected, _ = plain.read()
        assert stack.band_names == plain.band_names
    assert np.array_equal(image, expected) and valid.all()


def test_predict_takes_a_zipped_raster_and_names_outputs_after_it(
    make_raster, make_checkpoint, tmp_path: Path
) -> None:
    path = zipped(make_raster())
    outputs = predict_raster(lambda x: x[:, :1], path, tmp_path / "out", settings=SMALL)
    assert outputs.probabilities.name == "scene_probs.tif"
    code = main(["-q", "predict", str(make_checkpoint()), path, "--out", str(tmp_path / "cli")])
    assert code == 0
    with rasterio.open(tmp_path / "cli" / "scene_classes.tif") as dataset:
        assert dataset.count == 1


def test_a_missing_member_is_a_raster_error_naming_the_virtual_path(make_raster) -> None:
    path = zipped(make_raster()).replace("scene.tif", "other.tif")
    with pytest.raises(RasterError, match=r"/vsizip/.*other\.tif: cannot open it through GDAL"):
        open_stack(path)


def test_a_url_keeps_its_double_slash_through_path() -> None:
    assert gdal_path(Path("/vsicurl/https://example.com/a.tif")) == (
        "/vsicurl/https://example.com/a.tif"
    )
    assert gdal_path(Path("/vsis3/bucket/scenes/a.tif")) == "/vsis3/bucket/scenes/a.tif"
