"""Write GeoTIFFs: tiled, compressed, georeferenced, atomically, and progressively if need be.

Every raster spectraseg writes goes through `RasterWriter`: a temporary name beside the target,
renamed only when the `with` block ends without an error (after conversion to a Cloud-Optimized
GeoTIFF with overviews when asked), so an interrupted run never leaves a file that looks
complete.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetWriter
from rasterio.windows import Window

from spectraseg.errors import RasterError
from spectraseg.grid import Grid
from spectraseg.io.atomic import check_writable, remove_stale_partials, temporary_sibling
from spectraseg.io.rasters import gdal_cache_bytes

PathLike = str | os.PathLike[str]
Colormap = Mapping[int, tuple[int, int, int, int]]

# Overviews halve the raster until it fits in one tile, as the COG driver does.
OVERVIEW_TILE_PX = 256
# GDAL's block cache while overviews are built, whatever the caller set. With a cache of a few
# bytes, GDAL flushes overview tiles half-written and appends them again when complete:
# measured, a 2048 x 2048 x 3 float32 file grew to 71.7 MB instead of 56.0 MB.
OVERVIEW_CACHE_MB = 64


def overview_factors(width: int, height: int) -> list[int]:
    """Decimation factors 2, 4, ... until the largest side fits in one 256 px tile.

    Example:
        >>> overview_factors(256, 100), overview_factors(600, 300)
        ([], [2, 4])
    """
    factors: list[int] = []
    factor = 1
    while max(width, height) / factor > OVERVIEW_TILE_PX:
        factor *= 2
        factors.append(factor)
    return factors


def compression_threads() -> str:
    """Threads GDAL compresses tiles and builds overviews with: `GDAL_NUM_THREADS` when set,
    else every core. On a GPU the predict path waits on the writer, not the network: on an
    H200 with 16 cores, compressing and building overviews were 70% of a 2048^2 prediction in
    one thread (docs/benchmarks.md, GPU). Dask workers set 1, so N workers on one machine do
    not each take every core."""
    return os.environ.get("GDAL_NUM_THREADS", "ALL_CPUS")


def _profile(
    grid: Grid, count: int, dtype: str, nodata: float | None, compress: str
) -> dict[str, Any]:
    tiled = grid.width >= 256 and grid.height >= 256
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": count,
        "dtype": dtype,
        "crs": grid.crs,
        "transform": grid.transform,
        "compress": compress,
        "BIGTIFF": "IF_SAFER",
    }
    if tiled:
        profile.update(tiled=True, blockxsize=256, blockysize=256)
    if compress in ("deflate", "lzw", "zstd"):
        profile["predictor"] = 3 if np.dtype(dtype).kind == "f" else 2
        profile["num_threads"] = compression_threads()
    if nodata is not None:
        profile["nodata"] = nodata
    return profile


class RasterWriter:
    """A GeoTIFF written progressively (row blocks, windows) under a temporary name.

    Only when the `with` block ends without an error is the file renamed onto its final name
    (converted to a Cloud-Optimized GeoTIFF with overviews first when `cog`). Memory is only
    what each `write` call passes in.
    """

    def __init__(
        self,
        path: PathLike,
        grid: Grid,
        count: int,
        dtype: str = "float32",
        *,
        band_names: Sequence[str] | None = None,
        nodata: float | None = None,
        tags: Mapping[str, str] | None = None,
        overwrite: bool = False,
        cog: bool = False,
        compress: str = "deflate",
        overview_resampling: str = "average",
        overviews: bool = False,
        colormap: Colormap | None = None,
    ) -> None:
        self.path = Path(path)
        check_writable(self.path, overwrite=overwrite)
        if band_names is not None and len(band_names) != count:
            raise ValueError(f"{len(band_names)} band names for {count} bands")
        self.grid = grid
        self.cog = cog
        # Overviews of continuous values average; of class ids or 0/1 masks they must not
        # invent values between classes, so masks pass "nearest" (or "mode").
        self.overview_resampling = overview_resampling
        # Internal overviews let GIS viewers show a large raster zoomed out without reading
        # every pixel; a COG always has them.
        self.overviews = overviews
        self._colormap = dict(colormap) if colormap is not None else None
        self._profile = _profile(grid, count, dtype, nodata, compress)
        self._band_names = list(band_names) if band_names is not None else None
        self._tags = dict(tags or {})
        self._temporary = temporary_sibling(self.path)
        self._dataset: DatasetWriter | None = None

    def __enter__(self) -> RasterWriter:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_partials(self.path.parent, name=self.path.name)  # a killed run's
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", NotGeoreferencedWarning)
                self._dataset = rasterio.open(self._temporary, "w", **self._profile)
        except (OSError, RasterioError) as error:
            raise RasterError(f"{self.path}: cannot write here ({error}).") from None
        if self._band_names:
            for index, name in enumerate(self._band_names, start=1):
                self._dataset.set_band_description(index, name)
        if self._tags:
            self._dataset.update_tags(**self._tags)
        if self._colormap is not None:
            self._dataset.write_colormap(1, self._colormap)
        return self

    def write(self, array: np.ndarray, window: Window | None = None) -> None:
        """Write (C, h, w) pixels at `window` (default: the whole grid)."""
        assert self._dataset is not None, "use RasterWriter in a with block"
        try:
            self._dataset.write(array.astype(self._profile["dtype"], copy=False), window=window)
        except (OSError, RasterioError) as error:
            raise self._write_error(error) from None

    def _write_error(self, error: Exception) -> OSError:
        """GDAL says "Write failed" (the cause is in its log): name the file, and a full disk."""
        try:
            full = shutil.disk_usage(self.path.parent).free < 2**20
        except OSError:
            full = False
        if full:
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        detail = str(error).split("\n")[0]
        return RasterError(f"{self.path}: cannot write the raster ({detail}).")

    def write_rows(self, array: np.ndarray, row_off: int) -> None:
        """Write full-width rows (C, h, W) starting at `row_off`."""
        self.write(array, Window(0, row_off, self.grid.width, array.shape[1]))

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._dataset is not None
        try:
            try:
                self._dataset.close()  # flushes GDAL's cache: a full disk often shows here
                if kind is None:
                    self._finish()
            except (OSError, RasterioError) as failure:
                if kind is None:  # else the error already on its way says more
                    raise self._write_error(failure) from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                self._temporary.unlink()

    def _finish(self) -> None:
        if self.overviews and not self.cog:
            self._add_overviews()
        if self.cog:
            converted = temporary_sibling(self.path)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NotGeoreferencedWarning)
                    rasterio.shutil.copy(
                        self._temporary,
                        converted,
                        driver="COG",
                        compress=self._profile["compress"].upper(),
                        overview_resampling=self.overview_resampling,
                        blocksize=256,
                        num_threads=compression_threads(),
                    )
                os.replace(converted, self.path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    converted.unlink()
        else:
            os.replace(self._temporary, self.path)

    def _add_overviews(self) -> None:
        """Internal overviews in the finished temporary file (one more read of its pixels)."""
        factors = overview_factors(self.grid.width, self.grid.height)
        if not factors:
            return
        with (
            warnings.catch_warnings(),
            rasterio.Env(
                GDAL_CACHEMAX=gdal_cache_bytes(OVERVIEW_CACHE_MB),
                GDAL_NUM_THREADS=compression_threads(),
            ),
        ):
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(self._temporary, "r+") as dataset:
                dataset.build_overviews(factors, Resampling[self.overview_resampling])
                dataset.update_tags(ns="rio_overview", resampling=self.overview_resampling)


def write_raster(
    path: PathLike,
    array: np.ndarray,
    grid: Grid,
    *,
    band_names: Sequence[str] | None = None,
    nodata: float | None = None,
    tags: Mapping[str, str] | None = None,
    overwrite: bool = False,
    cog: bool = False,
) -> None:
    """Write a (C, H, W) or (H, W) array as a tiled, compressed GeoTIFF, atomically."""
    data = array[None] if array.ndim == 2 else array
    if data.shape[1:] != grid.shape:
        raise ValueError(f"array {data.shape[1:]} does not match grid {grid.shape}")
    dtype = "uint8" if data.dtype == bool else str(data.dtype)
    with RasterWriter(
        path,
        grid,
        data.shape[0],
        dtype,
        band_names=band_names,
        nodata=nodata,
        tags=tags,
        overwrite=overwrite,
        cog=cog,
    ) as writer:
        writer.write(data)
