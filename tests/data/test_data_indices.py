"""Spectral indices from named bands: formulas, safety, custom indices, missing bands."""

from __future__ import annotations

import numpy as np
import pytest

from spectraseg.data.indices import (
    INDICES,
    CustomIndex,
    IndexSettings,
    add_indices,
    normalized_difference,
    required_bands,
)
from spectraseg.errors import BandError, ConfigError

BANDS = ("blue", "green", "red", "red_edge", "nir", "swir_1")
# One pixel per column: dense vegetation, open water, bare soil (reflectance).
PIXELS = {
    "blue": [0.03, 0.07, 0.11],
    "green": [0.05, 0.06, 0.14],
    "red": [0.03, 0.035, 0.19],
    "red_edge": [0.17, 0.02, 0.23],
    "nir": [0.38, 0.012, 0.27],
    "swir_1": [0.16, 0.006, 0.34],
}


@pytest.fixture
def image() -> np.ndarray:
    return np.array([[PIXELS[b]] for b in BANDS], dtype=np.float32)  # (6, 1, 3)


def value(image: np.ndarray, name: str) -> np.ndarray:
    out, names, _ = add_indices(image, BANDS, np.ones(image.shape[1:], bool), [name])
    return out[names.index(name), 0]


def test_the_indices_follow_their_published_formulas(image):
    b, g, r, re, n, s = (np.array(PIXELS[x], dtype=np.float64) for x in BANDS)
    expected = {
        "ndvi": (n - r) / (n + r),
        "ndwi": (g - n) / (g + n),
        "ndmi": (n - s) / (n + s),
        "evi": 2.5 * (n - r) / (n + 6 * r - 7.5 * b + 1),
        "savi": 1.5 * (n - r) / (n + r + 0.5),
        "ccci": ((n - re) / (n + re)) / ((n - r) / (n + r)),
    }
    for name, values in expected.items():
        assert value(image, name) == pytest.approx(values, rel=1e-5), name


def test_vegetation_and_water_indices_separate_the_pixels(image):
    ndvi, ndwi = value(image, "ndvi"), value(image, "ndwi")
    assert ndvi[0] > 0.5 and ndvi[1] < 0 and ndwi[1] > 0 > ndwi[0]


def test_indices_are_appended_as_named_channels_and_inputs_untouched(image):
    before = image.copy()
    out, names, valid = add_indices(image, BANDS, np.ones((1, 3), bool), ["ndvi", "savi"])
    assert names == (*BANDS, "ndvi", "savi")
    assert out.shape == (8, 1, 3) and out.dtype == np.float32 and valid.all()
    assert np.array_equal(image, before) and np.array_equal(out[:6], image)


def test_zero_denominators_give_zero_not_nan():
    zeros = np.zeros((2, 2, 2), dtype=np.float32)
    out, _, valid = add_indices(zeros, ("red", "nir"), np.ones((2, 2), bool), ["ndvi", "savi"])
    assert np.isfinite(out).all() and (out[2:] == 0).all() and valid.all()
    assert normalized_difference(np.zeros(3), np.zeros(3)).tolist() == [0.0, 0.0, 0.0]


def test_nodata_pixels_are_marked_invalid_and_hold_zero(image):
    image[4, 0, 1] = np.nan  # a NaN NIR pixel
    valid = np.array([[False, True, True]])  # and an invalid pixel
    out, _, valid_out = add_indices(image, BANDS, valid, ["ndvi", "ccci"])
    assert valid_out.tolist() == [[False, False, True]]
    assert np.isfinite(out[6:]).all() and (out[6:, 0, :2] == 0).all()


def test_sentinel2_red_edge_1_stands_in_for_red_edge():
    bands = ("red", "red_edge_1", "nir")
    image = np.array([[[0.03]], [[0.17]], [[0.38]]], dtype=np.float32)
    out, names, _ = add_indices(image, bands, np.ones((1, 1), bool), ["ccci"])
    assert names[-1] == "ccci" and out[-1, 0, 0] != 0


def test_custom_normalized_difference_and_ratio_indices(image):
    custom = {
        "ndbi": CustomIndex(kind="normalized_difference", bands=("swir_1", "nir")),
        "nir_red": CustomIndex(kind="ratio", bands=("nir", "red")),
    }
    out, names, _ = add_indices(
        image, BANDS, np.ones((1, 3), bool), ["ndbi", "nir_red"], custom=custom
    )
    n, r, s = (np.array(PIXELS[x]) for x in ("nir", "red", "swir_1"))
    assert out[names.index("ndbi"), 0] == pytest.approx((s - n) / (s + n), rel=1e-5)
    assert out[names.index("nir_red"), 0] == pytest.approx(n / r, rel=1e-5)


def test_index_settings_validate_custom_declarations():
    settings = IndexSettings.model_validate(
        {
            "names": ["ndvi", "ndbi"],
            "custom": {"ndbi": {"kind": "normalized_difference", "bands": ["swir_1", "nir"]}},
        }
    )
    assert settings.custom["ndbi"].bands == ("swir_1", "nir")
    with pytest.raises(ValueError, match="kind"):
        IndexSettings.model_validate({"custom": {"x": {"kind": "difference", "bands": ["a", "b"]}}})


def test_a_missing_band_names_the_index_the_band_and_the_scene(image):
    with pytest.raises(BandError, match="scene_7: index 'evi' needs band 'blue'") as caught:
        add_indices(image[1:], BANDS[1:], np.ones((1, 3), bool), ["evi"], source="scene_7")
    assert "\n" not in str(caught.value)


def test_an_unknown_index_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean 'ndvi'"):
        required_bands(["ndvii"])


def test_every_builtin_index_declares_its_bands():
    assert set(INDICES) == {"ndvi", "ndwi", "ndmi", "evi", "savi", "ccci"}
    assert required_bands(["ndwi"]) == {"ndwi": (("green",), ("nir",))}
