"""STAC items as inputs: an item JSON (local or remote) whose raster assets are the bands.

Wherever a raster path is accepted, `item.json` stands for its data assets stacked as bands,
each read through rasterio (a remote asset through `/vsicurl/` or `/vsis3/`). An asset's band
is named by its `eo:bands` common name, else its `eo:bands` name, else the asset's key, so a
Sentinel-2 item's `B04` asset is the band `red` as a Sentinel-2 band file would be.
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from spectraseg.errors import RasterError

__all__ = ["StacBand", "is_stac_item", "read_stac_item"]

PathLike = str | os.PathLike[str]

RASTER_MEDIA_TYPES = ("image/tiff", "image/jp2", "image/vnd.stac.geotiff")
RASTER_HREF_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img")
REMOTE_TIMEOUT_S = 30


@dataclass(frozen=True)
class StacBand:
    """One data asset of an item: the band name it gives and where GDAL reads it."""

    name: str
    path: str


def is_stac_item(path: PathLike) -> bool:
    """Whether `path` is given as a STAC item: a `.json` file or URL.

    Example:
        >>> is_stac_item("items/S2B_33UUU.json"), is_stac_item("scene.tif")
        (True, False)
    """
    return os.fspath(path).lower().endswith(".json")


def _location(path: PathLike) -> str:
    """The item's own address: a URL for remote items (also given through /vsicurl/)."""
    text = os.fspath(path)
    for prefix in ("/vsicurl/", "/vsicurl_streaming/"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text.replace(":/", "://", 1) if text.startswith(("https:/", "http:/")) else text


def _load(location: str) -> Any:
    try:
        if location.startswith(("http://", "https://")):
            with urllib.request.urlopen(location, timeout=REMOTE_TIMEOUT_S) as response:
                return json.loads(response.read().decode("utf-8"))
        return json.loads(Path(location).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RasterError(f"{location}: no such STAC item file.") from None
    except (OSError, ValueError) as error:
        raise RasterError(f"{location}: cannot read the STAC item ({error}).") from None


def _gdal_href(href: str, location: str) -> str:
    """An asset href as GDAL reads it: resolved against the item, remote through /vsi."""
    if href.startswith("s3://"):
        return "/vsis3/" + href[len("s3://") :]
    if location.startswith(("http://", "https://")) or href.startswith(("http://", "https://")):
        resolved = urljoin(location, href)
        return "/vsicurl/" + resolved if resolved.startswith("http") else resolved
    if href.startswith("file://"):
        href = href[len("file://") :]
    return str(Path(location).parent / href) if not os.path.isabs(href) else href


def _is_data_raster(asset: dict[str, Any]) -> bool:
    roles = asset.get("roles")
    if roles and "data" not in roles:
        return False  # thumbnails, overviews, metadata
    media = str(asset.get("type") or "").lower()
    if media:
        return media.startswith(RASTER_MEDIA_TYPES)
    return str(asset.get("href", "")).lower().endswith(RASTER_HREF_SUFFIXES)


def _band_name(key: str, asset: dict[str, Any]) -> str:
    bands = asset.get("eo:bands") or []
    if len(bands) == 1 and isinstance(bands[0], dict):
        return str(bands[0].get("common_name") or bands[0].get("name") or key)
    return key


def read_stac_item(path: PathLike) -> list[StacBand]:
    """The item's data rasters, in the item's asset order, with their band names.

    Raises:
        RasterError: the file is not a STAC item, or it has no raster data asset.
    """
    location = _location(path)
    item = _load(location)
    if not isinstance(item, dict) or item.get("type") != "Feature" or "assets" not in item:
        raise RasterError(
            f"{location}: not a STAC item (a GeoJSON Feature with assets); give the item's "
            "JSON, or the raster files themselves."
        )
    bands = [
        StacBand(_band_name(key, asset), _gdal_href(str(asset["href"]), location))
        for key, asset in item["assets"].items()
        if isinstance(asset, dict) and "href" in asset and _is_data_raster(asset)
    ]
    if not bands:
        keys = ", ".join(item["assets"]) or "none"
        raise RasterError(f"{location}: no raster data asset in the STAC item (assets: {keys}).")
    return bands
