"""Spectral indices computed from named reflectance bands and added as extra channels.

Indices are computed on reflectance (after the sensor's scale and offset, before
normalization): EVI's and SAVI's constants assume reflectance in [0, 1]. A new index is a line
of declaration in `INDICES`, not a new algorithm.

Formulas (band names are the common names of `spectraseg.io.rasters` presets):

| index | formula | source |
| --- | --- | --- |
| ndvi | (nir - red) / (nir + red) | Rouse et al. 1974 |
| ndwi | (green - nir) / (green + nir) | McFeeters 1996 (open water) |
| ndmi | (nir - swir_1) / (nir + swir_1) | Gao 1996 (his "NDWI", leaf water) |
| evi | 2.5 (nir - red) / (nir + 6 red - 7.5 blue + 1) | Huete et al. 2002 (MODIS constants) |
| savi | 1.5 (nir - red) / (nir + red + 0.5) | Huete 1988, L = 0.5 |
| ccci | ndre / ndvi, ndre = (nir - red_edge) / (nir + red_edge) | Barnes et al. 2000 |

NDWI, EVI, SAVI and CCCI are the four extra channels of the DSTL 3rd-place solution
(Iglovikov, Mushinskiy & Osin 2017), computed there from the WorldView-3 M bands. With the
`worldview3`/`dstl` presets the bands used are green = M3 (510-580 nm), red = M5 (630-690 nm),
red_edge = M6 (705-745 nm), nir = NIR1 M7 (770-895 nm) and blue = M2 (450-510 nm). Sentinel-2
has three red-edge bands: `red_edge` falls back to `red_edge_1` (B05, 705 nm), the one closest
to WorldView-3's.

Division by zero and nodata never leave a NaN behind: where a denominator is exactly 0 the
index is 0 (both bands 0 is "no signal", not "no data"), and pixels that were invalid in any
input band, or whose index is not finite, are marked invalid and hold 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from spectraseg.errors import BandError, ConfigError, did_you_mean
from spectraseg.settings import Settings

Array = np.ndarray


def safe_divide(numerator: Array, denominator: Array) -> Array:
    """numerator / denominator, with 0 where the denominator is 0.

    Example:
        >>> safe_divide(np.array([1.0, 2.0]), np.array([0.0, 4.0])).tolist()
        [0.0, 0.5]
    """
    out = np.zeros(np.broadcast(numerator, denominator).shape, dtype=np.float32)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def normalized_difference(a: Array, b: Array) -> Array:
    """(a - b) / (a + b), with 0 where both are 0. NDVI is this with (nir, red).

    Example:
        >>> values = normalized_difference(np.array([0.5, 0.0]), np.array([0.1, 0.0]))
        >>> [round(float(v), 3) for v in values]
        [0.667, 0.0]
    """
    return safe_divide(a - b, a + b)


def ratio(a: Array, b: Array) -> Array:
    """a / b, with 0 where b is 0."""
    return safe_divide(a, b)


def _evi(blue: Array, red: Array, nir: Array) -> Array:
    return 2.5 * safe_divide(nir - red, nir + 6.0 * red - 7.5 * blue + 1.0)


def _savi(red: Array, nir: Array) -> Array:
    soil = 0.5  # L: the canopy background adjustment for intermediate vegetation density
    return (1.0 + soil) * safe_divide(nir - red, nir + red + soil)


def _ccci(red: Array, red_edge: Array, nir: Array) -> Array:
    return safe_divide(normalized_difference(nir, red_edge), normalized_difference(nir, red))


@dataclass(frozen=True)
class IndexSpec:
    """An index: the bands it needs (each with fallback names) and how to combine them."""

    bands: tuple[tuple[str, ...], ...]
    compute: Callable[..., Array]
    description: str


def _nd(a: str, b: str, description: str) -> IndexSpec:
    return IndexSpec(((a,), (b,)), normalized_difference, description)


RED_EDGE = ("red_edge", "red_edge_1")

INDICES: dict[str, IndexSpec] = {
    "ndvi": _nd("nir", "red", "normalized difference vegetation index"),
    "ndwi": _nd("green", "nir", "McFeeters' normalized difference water index"),
    "ndmi": _nd("nir", "swir_1", "Gao's normalized difference moisture index"),
    "evi": IndexSpec((("blue",), ("red",), ("nir",)), _evi, "enhanced vegetation index"),
    "savi": IndexSpec((("red",), ("nir",)), _savi, "soil-adjusted vegetation index, L = 0.5"),
    "ccci": IndexSpec((("red",), RED_EDGE, ("nir",)), _ccci, "canopy chlorophyll content index"),
}


class CustomIndex(Settings):
    """A user-declared index: `(a - b) / (a + b)` or `a / b` of two named bands.

    In YAML: `indices: {custom: {ndbi: {kind: normalized_difference, bands: [swir_1, nir]}}}`.
    """

    kind: Literal["normalized_difference", "ratio"]
    bands: tuple[str, str]


class IndexSettings(Settings):
    """Which indices to add, in order; names may be built-in or declared in `custom`."""

    names: tuple[str, ...] = ()
    custom: dict[str, CustomIndex] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> IndexSettings:
        # Checked when the config loads (`spectraseg config`), not when training starts.
        for name in self.names:
            try:
                _resolve(name, self.custom)
            except ConfigError as error:
                raise ValueError(str(error).rstrip(".")) from None
        return self


def _resolve(name: str, custom: Mapping[str, CustomIndex]) -> IndexSpec:
    if name in custom:
        spec = custom[name]
        function = normalized_difference if spec.kind == "normalized_difference" else ratio
        return IndexSpec(((spec.bands[0],), (spec.bands[1],)), function, spec.kind)
    key = name.lower()
    if key in INDICES:
        return INDICES[key]
    known = sorted(INDICES) + sorted(custom)
    raise ConfigError(
        f"unknown spectral index {name!r}{did_you_mean(key, known)}. "
        "Declare it under indices.custom."
    )


def required_bands(
    names: Sequence[str], custom: Mapping[str, CustomIndex] | None = None
) -> dict[str, tuple[tuple[str, ...], ...]]:
    """Index name -> the bands it needs (alternatives per slot), for checks before reading."""
    return {name: _resolve(name, custom or {}).bands for name in names}


def _find_band(
    index: str, choices: tuple[str, ...], band_names: Sequence[str], source: str | None
) -> int:
    for choice in choices:
        if choice in band_names:
            return list(band_names).index(choice)
    where = f"{source}: " if source else ""
    wanted = " or ".join(repr(c) for c in choices)
    raise BandError(
        f"{where}index {index!r} needs band {wanted}, which the scene lacks "
        f"(bands: {', '.join(band_names)}). Drop the index or add the band."
    )


def add_indices(
    image: Array,
    band_names: Sequence[str],
    valid: Array,
    names: Sequence[str],
    *,
    custom: Mapping[str, CustomIndex] | None = None,
    source: str | None = None,
) -> tuple[Array, tuple[str, ...], Array]:
    """Append one channel per index to `image`; inputs are untouched.

    Args:
        image: (C, H, W) reflectance.
        valid: (H, W) bool; pixels invalid in the result are False in the returned mask.
        names: index names, built-in or keys of `custom`; an index already in `band_names`
            is not added twice.
        source: scene or file name for error messages.

    Returns:
        (image (C + N, H, W) float32, band names, valid (H, W) bool).

    Example:
        >>> image = np.array([[[0.1]], [[0.5]]], dtype=np.float32)
        >>> out, bands, ok = add_indices(image, ("red", "nir"), np.ones((1, 1), bool), ["ndvi"])
        >>> bands, round(float(out[2, 0, 0]), 3), bool(ok[0, 0])
        (('red', 'nir', 'ndvi'), 0.667, True)
    """
    custom = custom or {}
    band_names = tuple(band_names)
    if image.ndim != 3 or image.shape[0] != len(band_names):
        raise BandError(
            f"{source or 'image'}: {image.shape} does not match {len(band_names)} band names."
        )
    new_names = [name for name in dict.fromkeys(names) if name not in band_names]
    specs = [_resolve(name, custom) for name in new_names]
    slots = [
        [_find_band(name, choices, band_names, source) for choices in spec.bands]
        for name, spec in zip(new_names, specs, strict=True)
    ]
    valid_out = valid.copy()
    channels = []
    for spec, positions in zip(specs, slots, strict=True):
        inputs = [image[p].astype(np.float32, copy=False) for p in positions]
        for band in inputs:
            valid_out &= np.isfinite(band)
        with np.errstate(invalid="ignore", over="ignore"):
            values = spec.compute(*inputs).astype(np.float32, copy=False)
        channels.append(values)
    for values in channels:
        valid_out &= np.isfinite(values)
    for values in channels:
        values[~valid_out] = 0.0
    if not channels:
        return image.astype(np.float32, copy=False), band_names, valid_out
    stacked = np.concatenate([image.astype(np.float32, copy=False), np.stack(channels)], axis=0)
    return stacked, band_names + tuple(new_names), valid_out
