"""Sensor presets: each sensor's band ids and file-name tokens mapped to common band names.

Later stages refer to bands by common name (`red`, `nir`, `swir_1`), so an index such as NDVI
is declared once and works for every sensor. Each preset also carries the scale and offset from
stored digital numbers to surface or top-of-atmosphere reflectance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class BandSpec:
    """One band of a sensor: its id in the product, its common name and native pixel size."""

    id: str
    name: str
    resolution_m: float | None = None


@dataclass(frozen=True)
class SensorPreset:
    """How to name and scale one sensor's bands: reflectance = dn * scale + offset."""

    name: str
    bands: tuple[BandSpec, ...]
    scale: float = 1.0
    offset: float = 0.0
    description: str = ""

    def name_for(self, band_id: str) -> str | None:
        """Common name for a band id such as 'B8A' or 'SR_B5' (case-insensitive)."""
        wanted = band_id.upper()
        for band in self.bands:
            if band.id.upper() == wanted:
                return band.name
        return None

    def name_from_filename(self, filename: str) -> str | None:
        """Common name from a file-name token: `..._B8A.jp2` -> 'nir_narrow'.

        The longest id wins, so `_B8A` is not read as `_B8` and `SR_B1` not as `B1`.
        """
        stem = filename.rsplit("/", 1)[-1].rsplit(".", 1)[0].upper()
        for band in sorted(self.bands, key=lambda b: -len(b.id)):
            if re.search(rf"(^|[_\-.]){re.escape(band.id.upper())}$", stem):
                return band.name
        return None


def _bands(*entries: tuple[str, str, float | None]) -> tuple[BandSpec, ...]:
    return tuple(BandSpec(id=i, name=n, resolution_m=r) for i, n, r in entries)


def _landsat_c2(name: str, band_names: tuple[str | None, ...], description: str) -> SensorPreset:
    """A Collection 2 Level-2 product: bands SR_B1, SR_B2, ..., reflectance = dn x 2.75e-5 - 0.2."""
    bands = tuple(
        BandSpec(id=f"SR_B{number}", name=band, resolution_m=30)
        for number, band in enumerate(band_names, start=1)
        if band is not None
    )
    return SensorPreset(name, bands, scale=2.75e-5, offset=-0.2, description=description)


SENTINEL2_BANDS = _bands(
    ("B01", "coastal", 60),
    ("B02", "blue", 10),
    ("B03", "green", 10),
    ("B04", "red", 10),
    ("B05", "red_edge_1", 20),
    ("B06", "red_edge_2", 20),
    ("B07", "red_edge_3", 20),
    ("B08", "nir", 10),
    ("B8A", "nir_narrow", 20),
    ("B09", "water_vapour", 60),
    ("B10", "cirrus", 60),
    ("B11", "swir_1", 20),
    ("B12", "swir_2", 20),
)

WORLDVIEW3_MS = (
    ("coastal", "coastal"),
    ("blue", "blue"),
    ("green", "green"),
    ("yellow", "yellow"),
    ("red", "red"),
    ("red_edge", "red_edge"),
    ("nir1", "nir"),
    ("nir2", "nir_2"),
)

SENSORS: dict[str, SensorPreset] = {
    # Level-1C/2A products store reflectance x 10000; from processing baseline 04.00 (January
    # 2022) a +1000 radiometric offset is added, so `sentinel2_pb04` subtracts it.
    "sentinel2": SensorPreset(
        "sentinel2",
        SENTINEL2_BANDS,
        scale=1e-4,
        offset=0.0,
        description="Sentinel-2 before processing baseline 04.00",
    ),
    "sentinel2_pb04": SensorPreset(
        "sentinel2_pb04",
        SENTINEL2_BANDS,
        scale=1e-4,
        offset=-0.1,
        description="Sentinel-2 from processing baseline 04.00",
    ),
    "landsat8": _landsat_c2(
        "landsat8",
        ("coastal", "blue", "green", "red", "nir", "swir_1", "swir_2"),
        "Landsat 8/9 Collection 2 Level-2",
    ),
    # Landsat 7's band 6 is thermal: its surface-reflectance bands skip from SR_B5 to SR_B7.
    "landsat7": _landsat_c2(
        "landsat7",
        ("blue", "green", "red", "nir", "swir_1", None, "swir_2"),
        "Landsat 7 Collection 2 Level-2",
    ),
    "worldview3": SensorPreset(
        "worldview3",
        _bands(
            *((band_id, name, 1.24) for band_id, name in WORLDVIEW3_MS),
            *((f"swir{i}", f"swir_{i}", 3.7) for i in range(1, 9)),
            ("pan", "pan", 0.31),
        ),
        description="WorldView-3 (DN; calibrate upstream)",
    ),
    # DSTL: the 3-band image is pan-sharpened RGB at 0.3 m; P pan; M the 8 WorldView-3 MS bands
    # at 1.2 m; A the 8 SWIR bands at 7.5 m. Names stay unique across the four files.
    "dstl": SensorPreset(
        "dstl",
        _bands(
            ("R", "rgb_red", 0.3),
            ("G", "rgb_green", 0.3),
            ("B", "rgb_blue", 0.3),
            ("P", "pan", 0.3),
            *((f"M{i + 1}", name, 1.2) for i, (_, name) in enumerate(WORLDVIEW3_MS)),
            *((f"A{i}", f"swir_{i}", 7.5) for i in range(1, 9)),
        ),
        description="DSTL Satellite Imagery Feature Detection (WorldView-3)",
    ),
}

# How many bands each DSTL file holds, and the id prefix of its bands, by file suffix.
DSTL_FILES: dict[str, tuple[str, ...]] = {
    "": ("R", "G", "B"),
    "P": ("P",),
    "M": tuple(f"M{i}" for i in range(1, 9)),
    "A": tuple(f"A{i}" for i in range(1, 9)),
}


def get_sensor(name: str) -> SensorPreset:
    from spectraseg.errors import ConfigError, did_you_mean

    if name not in SENSORS:
        raise ConfigError(f"unknown sensor preset {name!r}{did_you_mean(name, list(SENSORS))}")
    return SENSORS[name]
