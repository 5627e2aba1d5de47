"""STAC items as inputs: the item's data assets are the bands, named by `eo:bands`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spectraseg.errors import RasterError
from spectraseg.io.rasters import open_stack
from spectraseg.predict.inputs import ModelInfo
from spectraseg.predict.raster import PredictSettings, predict_raster
from spectraseg.predict.tiling import TilingSettings

SMALL = PredictSettings(tiling=TilingSettings(window_px=16, overlap=0.5), tta=1)


def write_item(folder: Path, make_raster) -> Path:
    """item.json with B02/B03/B04 assets (blue, green, red) and a thumbnail."""
    assets = {}
    for seed, (key, common) in enumerate([("B02", "blue"), ("B03", "green"), ("B04", "red")]):
        make_raster(band_names=None, count=1, name=f"{key}.tif", seed=seed)
        assets[key] = {
            "href": f"./{key}.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
            "eo:bands": [{"name": key, "common_name": common}],
        }
    assets["thumbnail"] = {"href": "./thumb.png", "type": "image/png", "roles": ["thumbnail"]}
    item = {"type": "Feature", "stac_version": "1.0.0", "id": "scene", "assets": assets}
    path = folder / "item.json"
    path.write_text(json.dumps(item))
    return path


def test_a_stac_item_stacks_its_data_assets_named_by_common_name(make_raster, tmp_path) -> None:
    item = write_item(tmp_path, make_raster)
    files = [tmp_path / f"{key}.tif" for key in ("B02", "B03", "B04")]
    with open_stack(item) as stack, open_stack(files) as plain:
        assert stack.band_names == ("blue", "green", "red")
        image, _ = stack.read()
        expected, _ = plain.read()  # Sentinel-2 file names: scaled to reflectance in both
    assert np.array_equal(image, expected)


def test_predict_takes_a_stac_item_with_the_model_bands_in_any_order(make_raster, tmp_path) -> None:
    item = write_item(tmp_path, make_raster)
    info = ModelInfo(band_names=("red", "green", "blue"))
    outputs = predict_raster(lambda x: x[:, :1], item, tmp_path / "out", settings=SMALL, info=info)
    assert outputs.probabilities.name == "item_probs.tif"


def test_a_json_that_is_not_an_item_says_so(tmp_path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"type": "Catalog", "links": []}))
    with pytest.raises(RasterError, match=r"catalog\.json: not a STAC item"):
        open_stack(path)
