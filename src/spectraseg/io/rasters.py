"""Read several rasters as one band stack on one grid, window by window; write GeoTIFFs.

A scene may be one multi-band file or several files at different resolutions (Sentinel-2's
10/20/60 m bands, DSTL's RGB/P/M/A images). `open_stack` picks a reference grid (the finest
resolution unless told otherwise) and warps every other file onto it on the fly through GDAL's
warped VRTs, so reading one window costs memory proportional to that window, not to the scene.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import rasterio
import rasterio.env
import rasterio.shutil
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from spectraseg.errors import BandError, ConfigError, RasterError, SpectrasegWarning
from spectraseg.grid import Grid
from spectraseg.io.sensors import DSTL_FILES, SENSORS, SensorPreset, get_sensor
from spectraseg.io.stac import is_stac_item, read_stac_item

log = logging.getLogger(__name__)

RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".png", ".jpg", ".jpeg", ".img")
# Rasters without georeference are placed in the pixel space of the reference image; GDAL's
# warper still needs some CRS to work in, and any projected one does.
PIXEL_SPACE_CRS = CRS.from_epsg(3857)
# Grids whose pixel sizes differ by less than this share are treated as the same grid.
SAME_GRID_TOLERANCE = 1e-6

PathLike = str | os.PathLike[str]

# GDAL's virtual file systems: zip/tar/gzip archives, HTTP(S), S3, GCS, Azure, in-memory files.
VIRTUAL_PREFIX = "/vsi"
# `Path` folds every "//" of a virtual path: the URL's ("/vsicurl/https://host" becomes
# "/vsicurl/https:/host") and the one before an archive's absolute path ("/vsizip//data/a.zip"
# becomes "/vsizip/data/a.zip"); GDAL needs them back.
_FOLDED_URL = re.compile(r"\b(https?|ftp):/(?!/)")
_ARCHIVE = re.compile(r"^(/vsi(?:zip|tar|gzip|7z|rar)/)(?!/|vsi)(.+)$")


def is_virtual(path: PathLike) -> bool:
    """Whether `path` names a file in one of GDAL's virtual file systems (`/vsizip/`, ...).

    Such paths exist for GDAL only: `Path.exists()` says no, so they skip local checks.

    Example:
        >>> is_virtual("/vsizip/scenes.zip/scene.tif"), is_virtual("scenes/scene.tif")
        (True, False)
    """
    return os.fspath(path).startswith(VIRTUAL_PREFIX)


def gdal_path(path: PathLike) -> str:
    """The path as GDAL takes it: a virtual path's URL with its "//" restored.

    Example:
        >>> gdal_path(Path("/vsicurl/https://example.com/scene.tif"))
        '/vsicurl/https://example.com/scene.tif'
    """
    text = os.fspath(path)
    if not is_virtual(text):
        return text
    return _restore_archive_root(_FOLDED_URL.sub(r"\1://", text))


def _restore_archive_root(text: str) -> str:
    """`/vsizip/data/a.zip/x.tif` -> `/vsizip//data/a.zip/x.tif` when the archive is found
    from the root and not from the working folder."""
    match = _ARCHIVE.match(text)
    if not match:
        return text
    prefix, inner = match.groups()
    parts = inner.split("/")
    for end in range(1, len(parts) + 1):
        candidate = "/".join(parts[:end])
        if os.path.isfile(candidate):
            return text
        if os.path.isfile("/" + candidate):
            return f"{prefix}/{inner}"
    return text


@dataclass
class _SourceFile:
    """One open file and the bands the stack takes from it."""

    path: Path
    dataset: DatasetReader
    indexes: list[int]
    names: list[str]
    scale: float = 1.0
    offset: float = 0.0
    shift_px: tuple[float, float] = (0.0, 0.0)
    reader: DatasetReader | WarpedVRT | None = None
    # Reference pixel -> file pixel as (x scale, x offset, y scale, y offset) when the file is
    # an axis-aligned rescaling of the reference grid: read directly with a fractional window.
    pixel_mapping: tuple[float, float, float, float] | None = None
    warned_nonfinite: bool = False
    description: str = field(default="")

    @property
    def has_nodata(self) -> bool:
        return self.dataset.nodata is not None


def gdal_cache_bytes(megabytes: int) -> int:
    """GDAL_CACHEMAX as rasterio must be given it: an integer is taken as bytes, not MB.

    (GDAL reads a small number in the environment as MB, but rasterio hands an int straight to
    `GDALSetCacheMax64`: a cap of "256" was 256 bytes, and a decimated read of a tiled file
    decompressed every block once per output row, 150x slower.)
    """
    return int(megabytes) * 1024 * 1024


def limit_gdal_cache(megabytes: int = 256) -> None:
    """Cap GDAL's block cache (default: 5 % of RAM) so windowed work stays bounded in memory.

    GDAL reads the setting when it first allocates its cache, so call this before the first
    raster is opened; the command line does.
    """
    rasterio.env.set_gdal_config("GDAL_CACHEMAX", gdal_cache_bytes(megabytes))


def list_raster_files(folder: Path) -> list[Path]:
    """Raster files directly inside `folder`, sorted by name."""
    return sorted(
        p for p in folder.iterdir() if p.suffix.lower() in RASTER_SUFFIXES and p.is_file()
    )


def _expand_inputs(inputs: PathLike | Sequence[PathLike]) -> tuple[list[Path], dict[Path, str]]:
    """The raster files of the inputs, and the band names STAC items give their assets."""
    items = [inputs] if isinstance(inputs, str | os.PathLike) else list(inputs)
    paths: list[Path] = []
    named: dict[Path, str] = {}
    for item in items:
        path = Path(item)
        if is_stac_item(item):
            for band in read_stac_item(item):
                paths.append(Path(band.path))
                named[Path(band.path)] = band.name
        elif path.is_dir():
            found = list_raster_files(path)
            if not found:
                raise RasterError(
                    f"{path}: folder holds no raster files ({', '.join(RASTER_SUFFIXES)})."
                )
            paths.extend(found)
        else:
            paths.append(path)
    if not paths:
        raise RasterError("no input rasters given.")
    return paths, named


def open_dataset(path: Path) -> DatasetReader:
    """Open one raster with an error that names the file and says what is wrong.

    GDAL virtual paths (`/vsizip/`, `/vsicurl/`, `/vsis3/`, ...) go to GDAL unchecked: only
    it can tell whether they exist.
    """
    virtual = is_virtual(path)
    if not virtual and not path.exists():
        raise RasterError(f"{path}: no such file.")
    if not virtual and path.is_dir():
        raise RasterError(f"{path}: is a folder, expected a raster file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            dataset = rasterio.open(gdal_path(path))
    except RasterioError as error:
        detail = str(error).split("\n")[0]
        what = (
            "cannot open it through GDAL's virtual file system"
            if virtual
            else ("not a raster GDAL can read")
        )
        raise RasterError(f"{gdal_path(path)}: {what} ({detail}).") from None
    if dataset.width < 2 or dataset.height < 2:
        size = f"{dataset.width} x {dataset.height}"
        dataset.close()
        raise RasterError(f"{path}: image is {size} px; at least 2 x 2 is needed.")
    return dataset


def data_band_indexes(dataset: DatasetReader) -> list[int]:
    """1-based indexes of the bands holding data: an alpha band is validity, not a band."""
    alpha = {i + 1 for i, kind in enumerate(dataset.colorinterp) if kind == ColorInterp.alpha}
    return [i for i in range(1, dataset.count + 1) if i not in alpha]


def grid_of(dataset: DatasetReader) -> Grid:
    """The grid of an open raster.

    A raster without CRS, or with an identity transform, is in pixel coordinates: its grid has
    no CRS and the identity transform.
    """
    georeferenced = dataset.crs is not None and not dataset.transform.is_identity
    return Grid(
        crs=dataset.crs if georeferenced else None,
        transform=dataset.transform if georeferenced else Affine.identity(),
        width=dataset.width,
        height=dataset.height,
    )


def _is_dstl(paths: Sequence[Path], datasets: Sequence[DatasetReader]) -> bool:
    """DSTL files: `<id>.tif` (3 bands) and `<id>_P.tif`, `<id>_M.tif`, `<id>_A.tif`."""
    for path, dataset in zip(paths, datasets, strict=True):
        suffix = path.stem.rsplit("_", 1)[-1]
        expected = DSTL_FILES.get(suffix if suffix in ("P", "M", "A") else "")
        if expected is None or len(expected) != dataset.count:
            return False
    return any(p.stem.endswith(("_M", "_A", "_P")) for p in paths)


def _detect_sensor(paths: Sequence[Path], datasets: Sequence[DatasetReader]) -> SensorPreset | None:
    """Sentinel-2, Landsat and DSTL files are recognised by their names (`_B8A`, `_SR_B5`, `_M`)."""
    if _is_dstl(paths, datasets):
        return SENSORS["dstl"]
    if len(paths) < 2 or any(d.count != 1 for d in datasets):
        return None
    for preset in (SENSORS["sentinel2"], SENSORS["landsat8"]):
        if all(preset.name_from_filename(p.name) for p in paths):
            return preset
    return None


def _band_names_for(
    path: Path,
    dataset: DatasetReader,
    preset: SensorPreset | None,
    single_file: bool,
    given: str | None = None,
) -> list[str]:
    indexes = data_band_indexes(dataset)
    count = len(indexes)
    if given is not None and count == 1:
        return [given]  # a STAC asset's band name
    descriptions = [dataset.descriptions[i - 1] or "" for i in indexes]
    if preset is not None:
        if preset.name == "dstl":
            suffix = path.stem.rsplit("_", 1)[-1]
            ids = DSTL_FILES[suffix if suffix in ("P", "M", "A") else ""]
            if len(ids) == count:
                return [preset.name_for(i) or i for i in ids]
        if count == 1:
            name = preset.name_from_filename(path.name) or preset.name_for(descriptions[0])
            if name:
                return [name]
        mapped = [preset.name_for(d) if d else None for d in descriptions]
        if all(mapped):
            return [m for m in mapped if m]
    if all(descriptions):
        return descriptions
    if count == 1 and not single_file:
        return [path.stem]
    return [f"band_{i + 1}" for i in range(count)]


def _deduplicate(files: Sequence[_SourceFile]) -> None:
    seen: set[str] = set()
    for source in files:
        clashes = [name for name in source.names if name in seen]
        if clashes:
            source.names = [f"{n}_{source.path.stem}" if n in seen else n for n in source.names]
            warnings.warn(
                f"{source.path}: band names {', '.join(clashes)} are already used by another "
                f"file; suffixed with '_{source.path.stem}'. Set band descriptions or a sensor "
                "preset to name them.",
                SpectrasegWarning,
                stacklevel=3,
            )
        seen.update(source.names)


def _reference_grid(
    files: Sequence[_SourceFile], reference: Path | None, resolution: float | None
) -> Grid:
    grids = [grid_of(f.dataset) for f in files]
    georeferenced = [g.is_georeferenced for g in grids]
    if reference is not None:
        matches = [i for i, f in enumerate(files) if f.path.resolve() == reference.resolve()]
        if not matches:
            raise ConfigError(f"{reference}: the reference raster is not among the inputs.")
        chosen = matches[0]
    elif all(georeferenced):
        chosen = min(
            range(len(grids)), key=lambda i: grids[i].resolution[0] * grids[i].resolution[1]
        )
    else:
        chosen = max(range(len(grids)), key=lambda i: grids[i].width * grids[i].height)
    grid = grids[chosen]
    if not all(georeferenced):
        if any(georeferenced):
            log.warning("some inputs have no georeference: all are aligned by extent")
        paths = ", ".join(str(f.path) for f in files)
        warnings.warn(
            f"{paths}: no georeference; working in pixel coordinates, aligned by extent.",
            SpectrasegWarning,
            stacklevel=3,
        )
        grid = Grid(crs=None, transform=Affine.identity(), width=grid.width, height=grid.height)
    if resolution is not None:
        if not grid.is_georeferenced:
            raise ConfigError("resolution can only be set for georeferenced rasters.")
        grid = grid.with_resolution(resolution)
    if grid.width < 2 or grid.height < 2:
        raise RasterError(
            f"{files[chosen].path}: the stacked grid is {grid.width} x {grid.height} px; "
            "at least 2 x 2 is needed."
        )
    return grid


class RasterStack:
    """Bands from one or more files, read on one reference grid window by window.

    `read` returns reflectance-scaled float32 pixels and a validity mask; pixels outside any
    file's coverage, at its nodata value or not finite are invalid.
    """

    def __init__(
        self, files: list[_SourceFile], grid: Grid, resampling: Resampling, keep: list[int] | None
    ) -> None:
        self._files = files
        self.grid = grid
        self.resampling = resampling
        all_names = [name for f in files for name in f.names]
        self._order = keep if keep is not None else list(range(len(all_names)))
        self.band_names: tuple[str, ...] = tuple(all_names[i] for i in self._order)
        self.paths: tuple[Path, ...] = tuple(f.path for f in files)
        for source in files:
            source.reader = self._reader_for(source)

    @property
    def count(self) -> int:
        return len(self.band_names)

    @property
    def shape(self) -> tuple[int, int]:
        return self.grid.shape

    def describe(self) -> str:
        return f"{len(self.band_names)} bands on {self.grid.describe()}"

    def file_pixel_sizes(self) -> list[tuple[Path, float]]:
        """Each file's own pixel size (x, in its CRS units), before stacking onto the grid."""
        return [(f.path, float(f.dataset.res[0])) for f in self._files]

    def _reader_for(self, source: _SourceFile) -> DatasetReader | WarpedVRT:
        dataset = source.dataset
        own = grid_of(dataset)
        if self.grid.is_georeferenced:
            src_crs, src_transform = dataset.crs, dataset.transform
        else:
            # Aligned by extent: the file's pixels are stretched over the reference image.
            src_crs = PIXEL_SPACE_CRS
            src_transform = Affine.scale(
                self.grid.width / dataset.width, self.grid.height / dataset.height
            )
        dy, dx = source.shift_px
        if dx or dy:
            src_transform = src_transform @ Affine.translation(-dx, -dy)
        same = (
            not (dx or dy)
            and own.shape == self.grid.shape
            and (
                not self.grid.is_georeferenced
                or (
                    own.crs == self.grid.crs
                    and own.transform.almost_equals(self.grid.transform, SAME_GRID_TOLERANCE)
                )
            )
        )
        if same:
            return dataset
        to_source = ~src_transform @ self.grid.transform
        same_crs = not self.grid.is_georeferenced or src_crs == self.grid.crs
        if same_crs and to_source.b == 0 and to_source.d == 0 and to_source.a > 0 < to_source.e:
            # GDAL's resampling reads give the warper's result at a fraction of its cost.
            source.pixel_mapping = (to_source.a, to_source.c, to_source.e, to_source.f)
        options: dict[str, Any] = {
            "src_crs": src_crs,
            "src_transform": src_transform,
            "crs": self.grid.crs or PIXEL_SPACE_CRS,
            "transform": self.grid.transform,
            "width": self.grid.width,
            "height": self.grid.height,
            "resampling": self.resampling,
        }
        if source.has_nodata:
            options.update(src_nodata=dataset.nodata, nodata=dataset.nodata)
        else:
            options["add_alpha"] = True
        return WarpedVRT(dataset, **options)

    def read(self, window: Window | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (C, h, w) float32 and validity (h, w) bool for `window` (default: all).

        The window may extend past the grid: the outside is filled with 0 and marked invalid.
        """
        if window is None:
            window = Window(0, 0, self.grid.width, self.grid.height)
        col, row = int(window.col_off), int(window.row_off)
        height, width = int(window.height), int(window.width)
        image = np.zeros((self.count, height, width), dtype=np.float32)
        valid = np.zeros((height, width), dtype=bool)
        r0, r1 = max(row, 0), min(row + height, self.grid.height)
        c0, c1 = max(col, 0), min(col + width, self.grid.width)
        if r1 <= r0 or c1 <= c0:
            return image, valid
        inside = Window(c0, r0, c1 - c0, r1 - r0)
        target = (slice(r0 - row, r1 - row), slice(c0 - col, c1 - col))
        bands: list[np.ndarray] = []
        inside_valid = np.ones((r1 - r0, c1 - c0), dtype=bool)
        for source in self._files:
            pixels, source_valid = self._read_source(source, inside)
            bands.extend(pixels)
            inside_valid &= source_valid
        stacked = np.stack([bands[i] for i in self._order])
        image[(slice(None), *target)] = stacked
        valid[target] = inside_valid
        return image, valid

    def _read_source(
        self, source: _SourceFile, window: Window
    ) -> tuple[list[np.ndarray], np.ndarray]:
        assert source.reader is not None
        try:
            direct = self._direct_window(source, window)
            if direct is not None:
                shape = (len(source.indexes), int(window.height), int(window.width))
                raw = source.dataset.read(
                    source.indexes,
                    window=direct,
                    out_shape=shape,
                    resampling=self.resampling,
                    out_dtype=np.float32,
                )
                masks = source.dataset.read_masks(
                    source.indexes, window=direct, out_shape=shape, resampling=Resampling.nearest
                )
            else:
                raw = source.reader.read(source.indexes, window=window, out_dtype=np.float32)
                masks = source.reader.read_masks(source.indexes, window=window)
        except RasterioError as error:
            detail = str(error).split("\n")[0]
            raise RasterError(
                f"{source.path}: cannot read pixels; the file may be truncated or "
                f"corrupt ({detail})."
            ) from None
        valid = np.all(masks > 0, axis=0)
        finite = np.all(np.isfinite(raw), axis=0)
        if not finite.all():
            if not source.warned_nonfinite:
                warnings.warn(
                    f"{source.path}: NaN or infinite pixels are treated as nodata.",
                    SpectrasegWarning,
                    stacklevel=3,
                )
                source.warned_nonfinite = True
            valid &= finite
            raw = np.where(finite[None], raw, 0.0).astype(np.float32)
        if source.scale != 1.0 or source.offset != 0.0:
            raw = raw * np.float32(source.scale) + np.float32(source.offset)
        return list(raw), valid

    @staticmethod
    def _direct_window(source: _SourceFile, window: Window) -> Window | None:
        """The file's own (fractional) window for a rescaled file, when it lies inside it."""
        if source.pixel_mapping is None:
            return None
        x_scale, x_offset, y_scale, y_offset = source.pixel_mapping
        col = x_offset + x_scale * window.col_off
        row = y_offset + y_scale * window.row_off
        width, height = x_scale * window.width, y_scale * window.height
        slack = 1e-6
        inside = (
            col >= -slack
            and row >= -slack
            and col + width <= source.dataset.width + slack
            and row + height <= source.dataset.height + slack
        )
        if not inside:
            return None
        return Window(max(col, 0.0), max(row, 0.0), width, height)

    def windows(self, rows: int) -> Iterator[Window]:
        """Full-width strips of `rows` rows covering the grid, top to bottom."""
        for row in range(0, self.grid.height, rows):
            yield Window(0, row, self.grid.width, min(rows, self.grid.height - row))

    def close(self) -> None:
        for source in self._files:
            if isinstance(source.reader, WarpedVRT):
                source.reader.close()
            source.dataset.close()

    def __enter__(self) -> RasterStack:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_stack(
    inputs: PathLike | Sequence[PathLike],
    *,
    band_names: Sequence[str] | None = None,
    resolution: float | None = None,
    resampling: str = "bilinear",
    sensor: str | None = None,
    reference: PathLike | None = None,
    shifts_px: Mapping[str, tuple[float, float]] | None = None,
) -> RasterStack:
    """Open one raster, several rasters or a folder of rasters as one band stack.

    Args:
        inputs: a file, a folder (every raster in it) or a list of files; VRTs work too.
        band_names: the bands to keep, in this order; a name no file has is a `BandError`.
        resolution: pixel size of the stacked grid in CRS units (default: the finest input).
        resampling: GDAL resampling for files not on the reference grid (bilinear suits
            reflectance; nearest keeps class ids).
        sensor: a preset from `spectraseg.io.sensors.SENSORS` naming and scaling the bands;
            Sentinel-2 and Landsat files are recognised without it.
        reference: the file whose grid the stack uses.
        shifts_px: per file name, a (row, col) shift in reference pixels applied to that file,
            as estimated by `spectraseg.io.coregister`.
    """
    paths, named = _expand_inputs(inputs)
    try:
        method = Resampling[resampling]
    except KeyError:
        raise ConfigError(
            f"unknown resampling {resampling!r}; use one of {', '.join(r.name for r in Resampling)}"
        ) from None
    datasets: list[DatasetReader] = []
    try:
        for path in paths:
            datasets.append(open_dataset(path))
        preset = get_sensor(sensor) if sensor else _detect_sensor(paths, datasets)
        if preset is not None and sensor is None:
            log.info("recognised %s band files; naming and scaling bands accordingly", preset.name)
        files = [
            _SourceFile(
                path=path,
                dataset=dataset,
                indexes=data_band_indexes(dataset),
                names=_band_names_for(
                    path, dataset, preset, single_file=len(paths) == 1, given=named.get(path)
                ),
                scale=preset.scale if preset else 1.0,
                offset=preset.offset if preset else 0.0,
                shift_px=(shifts_px or {}).get(path.name, (0.0, 0.0)),
            )
            for path, dataset in zip(paths, datasets, strict=True)
        ]
        _deduplicate(files)
        grid = _reference_grid(files, Path(reference) if reference else None, resolution)
        keep = _select(files, band_names)
        return RasterStack(files, grid, method, keep)
    except BaseException:
        for dataset in datasets:
            dataset.close()
        raise


def _select(files: Sequence[_SourceFile], band_names: Sequence[str] | None) -> list[int] | None:
    if band_names is None:
        return None
    available = [name for f in files for name in f.names]
    missing = [name for name in band_names if name not in available]
    if missing:
        where = ", ".join(str(f.path) for f in files)
        raise BandError(
            f"{where}: no band named {', '.join(map(repr, missing))}; "
            f"bands are {', '.join(available)}."
        )
    return [available.index(name) for name in band_names]
