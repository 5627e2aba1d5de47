"""Read raster masks onto a scene's grid: class ids, one band per class, or colours.

A mask is one band of class ids, one band per class, or a colour-coded RGB(A) or palette image
decoded with the class colours of `classes.yaml`; `mask_encoding: auto` tells them apart by
band count, colour interpretation and palette. Raw ids map to classes through `classes.yaml`
as vector values do (`io/labels.py`); `ignore_value` (and transparent pixels) mark "not
labelled", and so do pixels at the mask's declared nodata value and pixels of the scene the
mask does not cover (a mask of part of a scene leaves the rest ignored, as evaluation does).
A mask on another grid is warped onto the scene's with nearest neighbours.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from spectraseg.classes import ClassList, Colour
from spectraseg.errors import LabelError, SpectrasegWarning
from spectraseg.grid import Grid
from spectraseg.io.labels import MaskEncoding, value_text
from spectraseg.io.rasters import gdal_path, is_virtual

Array = np.ndarray


def _open_mask(path: Path) -> rasterio.io.DatasetReader:
    if not is_virtual(path) and not path.exists():
        raise LabelError(f"{path}: no such mask file.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(gdal_path(path))
    except RasterioError as error:
        detail = str(error).split("\n")[0]
        raise LabelError(f"{path}: not a raster GDAL can read ({detail}).") from None


def _mask_reader(
    dataset: rasterio.io.DatasetReader, grid: Grid, path: Path
) -> rasterio.io.DatasetReader | WarpedVRT:
    """The mask itself when it is on the grid, else a nearest-neighbour warp onto it."""
    own_crs = dataset.crs if not dataset.transform.is_identity else None
    if dataset.shape == grid.shape and (
        grid.crs is None
        or own_crs is None
        or (own_crs == grid.crs and dataset.transform.almost_equals(grid.transform, 1e-6))
    ):
        return dataset
    if (own_crs is None) != (grid.crs is None):
        raise LabelError(
            f"{path}: mask is {dataset.width} x {dataset.height} px "
            f"{'without' if own_crs is None else 'with'} a CRS, the image "
            f"{grid.describe()}: they cannot be aligned. Give the mask the image's grid."
        )
    if own_crs is None:
        # Both in pixel coordinates: align by extent, as the image bands are.
        crs = CRS.from_epsg(3857)
        source_transform = Affine.scale(grid.width / dataset.width, grid.height / dataset.height)
    else:
        crs, source_transform = own_crs, dataset.transform
    return WarpedVRT(
        dataset,
        src_crs=crs,
        src_transform=source_transform,
        crs=grid.crs or crs,
        transform=grid.transform,
        width=grid.width,
        height=grid.height,
        resampling=Resampling.nearest,
        # Pixels the mask does not cover read as transparent, not as class 0 (background).
        add_alpha=True,
    )


def _detect_encoding(dataset: rasterio.io.DatasetReader, num_classes: int, path: Path) -> str:
    if dataset.count == 1:
        try:
            dataset.colormap(1)
            return "colour"
        except ValueError:
            return "ids"
    rgb = (ColorInterp.red, ColorInterp.green, ColorInterp.blue)
    if dataset.count in (3, 4) and tuple(dataset.colorinterp[:3]) == rgb:
        return "colour"
    if dataset.count == num_classes:
        return "per_class"
    raise LabelError(
        f"{path}: a {dataset.count}-band mask is neither RGB(A) nor one band per class "
        f"({num_classes} classes). Set data.labels.mask_encoding."
    )


def read_mask(
    path: str | os.PathLike[str],
    classes: ClassList,
    grid: Grid,
    *,
    encoding: MaskEncoding = "auto",
    window: Window | None = None,
) -> tuple[Array, Array]:
    """(mask (K, h, w) bool, ignore (h, w) bool) from a raster mask, on `grid` (or a window).

    `ids`: one band of class ids (0 background; raw values map through classes.yaml, so a
    0/255 road mask works with `values: [255]`). `per_class`: band k is class k (non-zero =
    in the class). `colour`: RGB(A) or a palette image; colours are the classes' `colour`,
    black is background, transparent pixels are ignored. `ignore_value` pixels are ignored.
    """
    source = Path(path)
    dataset = _open_mask(source)
    try:
        chosen = (
            _detect_encoding(dataset, len(classes.classes), source)
            if encoding == "auto"
            else encoding
        )
        if dataset.nodata == 0:
            warnings.warn(
                f"{source}: declares nodata 0, so its 0 pixels are not labelled (ignored), not "
                "background. Unset the nodata value if 0 means background.",
                SpectrasegWarning,
                stacklevel=2,
            )
        reader = _mask_reader(dataset, grid, source)
        try:
            data = reader.read(list(range(1, dataset.count + 1)), window=window)
            # GDAL's mask: 0 at the declared nodata value and outside the mask's coverage.
            unlabelled = np.any(
                reader.read_masks(list(range(1, dataset.count + 1)), window=window) == 0, axis=0
            )
        except RasterioError as error:
            raise LabelError(f"{source}: cannot read the mask ({error}).") from None
        palette = None
        if chosen == "colour" and dataset.count == 1:
            try:
                palette = dataset.colormap(1)
            except ValueError:
                raise LabelError(
                    f"{source}: a one-band mask has no palette, so it cannot be a colour mask. "
                    "Use mask_encoding: ids."
                ) from None
        if isinstance(reader, WarpedVRT):
            reader.close()
    finally:
        dataset.close()
    # Nodata and uncovered pixels are "not labelled" (ignored), never a class or background.
    data[:, unlabelled] = 0
    mask, ignore = _decode(data, chosen, palette, classes, source)
    return mask, ignore | unlabelled


def _decode(
    data: Array,
    chosen: str,
    palette: dict[int, tuple[int, ...]] | None,
    classes: ClassList,
    source: Path,
) -> tuple[Array, Array]:
    if chosen == "ids":
        return _decode_ids(data[0], classes, source)
    if chosen == "per_class":
        return _decode_per_class(data, classes, source)
    if chosen == "colour":
        if palette is not None:
            lut = np.zeros((256, 4), dtype=np.uint8)
            for index, rgba in palette.items():
                if 0 <= index < 256:
                    lut[index] = rgba[:4] if len(rgba) >= 4 else (*rgba[:3], 255)
            data = np.moveaxis(lut[np.clip(data[0], 0, 255).astype(np.int64)], -1, 0)
        return _decode_colours(data, classes, source)
    raise LabelError(f"{source}: unknown mask encoding {chosen!r}; use ids, per_class or colour.")


def _apply_unmapped(
    unmapped: Array, classes: ClassList, ignore: Array, *, source: Path, shown: str
) -> None:
    if not unmapped.any():
        return
    if classes.unmapped_values == "error":
        raise LabelError(
            f"{source}: mask values not in classes.yaml: {shown}. Add them to a class's "
            "`values` (or `colour`), or set unmapped_values: ignore|background."
        )
    if classes.unmapped_values == "ignore":
        ignore |= unmapped


def _decode_ids(band: Array, classes: ClassList, source: Path) -> tuple[Array, Array]:
    num_classes = len(classes.classes)
    mask = np.zeros((num_classes, *band.shape), dtype=bool)
    ignore = np.zeros(band.shape, dtype=bool)
    table = classes.lookup()
    unmapped = np.zeros(band.shape, dtype=bool)
    unknown: list[str] = []
    for value in np.unique(band):
        text = value_text(value.item())
        where = band == value
        if classes.ignore_value is not None and value == classes.ignore_value:
            ignore |= where
        elif text is not None and text in table:
            mask[table[text]] |= where
        elif value != 0:
            unmapped |= where
            unknown.append(str(text))
    _apply_unmapped(unmapped, classes, ignore, source=source, shown=", ".join(unknown[:8]))
    return mask, ignore


def _decode_per_class(data: Array, classes: ClassList, source: Path) -> tuple[Array, Array]:
    num_classes = len(classes.classes)
    if data.shape[0] != num_classes:
        raise LabelError(
            f"{source}: {data.shape[0]} bands for {num_classes} classes; a per-class mask needs "
            "one band per class, in classes.yaml order."
        )
    if classes.ignore_value is not None:
        ignore = np.any(data == classes.ignore_value, axis=0)
        mask = (data != 0) & (data != classes.ignore_value)
    else:
        ignore = np.zeros(data.shape[1:], dtype=bool)
        mask = data != 0
    return mask, ignore


def _decode_colours(data: Array, classes: ClassList, source: Path) -> tuple[Array, Array]:
    if data.shape[0] not in (3, 4):
        raise LabelError(f"{source}: a colour mask needs 3 (RGB) or 4 (RGBA) bands.")
    rgb = data[:3].astype(np.int64)
    packed = (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]
    ignore = data[3] == 0 if data.shape[0] == 4 else np.zeros(packed.shape, dtype=bool)
    mask = np.zeros((len(classes.classes), *packed.shape), dtype=bool)
    known = np.zeros(packed.shape, dtype=bool)
    for position, colour in enumerate(classes.colours):
        hit = packed == _pack(colour)
        mask[position] = hit & ~ignore
        known |= hit
    unmapped = ~known & (packed != 0) & ~ignore
    unknown = [f"#{int(v):06x}" for v in np.unique(packed[unmapped])[:8]]
    _apply_unmapped(unmapped, classes, ignore, source=source, shown=", ".join(unknown))
    duplicated = [c for c, n in Counter(classes.colours).items() if n > 1]
    if duplicated:
        raise LabelError(
            f"{source}: classes share the colour(s) {duplicated}; colour masks need one colour "
            "per class. Give each class its own colour in classes.yaml."
        )
    return mask, ignore


def _pack(colour: Colour) -> int:
    return (colour[0] << 16) | (colour[1] << 8) | colour[2]
