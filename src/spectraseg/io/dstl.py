# shapely ships no type information (types-shapely is not a dependency).
# mypy: disable-error-code="import-untyped"
"""The DSTL competition's label files: WKT CSV, grid sizes, and their coordinate transform.

DSTL polygons (`train_wkt_v4.csv`: `ImageId, ClassType, MultipolygonWKT`) are given in
normalized coordinates: x in [0, Xmax], y in [Ymin, 0] (Ymin is negative), with each image's
`Xmax, Ymin` in `grid_sizes.csv`. The competition's own transform to the pixels of an image of
width W and height H scales by W' = W^2 / (W + 1) and H' = H^2 / (H + 1), not by W and H:

    col = x * W' / Xmax        row = y * H' / Ymin

The same normalized polygon therefore lands on the same ground in the 3-band, P, M and A
images, whatever their pixel sizes. Both directions are exact affine maps, returned as
`affine.Affine` so shapely geometries can be moved with `shapely.affinity.affine_transform(
geometry, transform.to_shapely())`.
"""

from __future__ import annotations

import csv
import math
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import shapely
from affine import Affine
from shapely.geometry.base import BaseGeometry

from spectraseg.errors import LabelError
from spectraseg.io.atomic import atomic_path

WKT_HEADER = ("ImageId", "ClassType", "MultipolygonWKT")
GRID_SIZES_HEADER = ("ImageId", "Xmax", "Ymin")
EMPTY_WKT = "MULTIPOLYGON EMPTY"


class WktRow(NamedTuple):
    """One row of a DSTL WKT CSV: all polygons of one class in one image, as WKT text."""

    image_id: str
    class_type: str
    wkt: str


def _allow_huge_fields() -> None:
    # Single DSTL multipolygons exceed csv's default 128 kB field limit by far.
    limit = sys.maxsize
    while True:
        try:
            csv.field_size_limit(limit)
            return
        except OverflowError:
            limit //= 10


def read_grid_sizes(path: str | os.PathLike[str]) -> dict[str, tuple[float, float]]:
    """Image id -> (xmax, ymin) from a DSTL grid-sizes CSV.

    The competition's file has an unnamed first column (header `,Xmax,Ymin`); a header of
    `ImageId,Xmax,Ymin` or no header at all also works.
    """
    source = Path(path)
    sizes: dict[str, tuple[float, float]] = {}
    try:
        with source.open(newline="", encoding="utf-8") as handle:
            for line_number, row in enumerate(csv.reader(handle), start=1):
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) < 3:
                    raise LabelError(
                        f"{source}:{line_number}: expected 3 columns (ImageId, Xmax, Ymin), "
                        f"got {len(row)}."
                    )
                try:
                    xmax, ymin = float(row[1]), float(row[2])
                except ValueError:
                    if line_number == 1:
                        continue  # the header
                    raise LabelError(
                        f"{source}:{line_number}: Xmax/Ymin {row[1]!r}, {row[2]!r} are not numbers."
                    ) from None
                if not (math.isfinite(xmax) and math.isfinite(ymin)) or xmax <= 0 or ymin >= 0:
                    raise LabelError(
                        f"{source}:{line_number}: image {row[0]!r} has Xmax={xmax:g}, "
                        f"Ymin={ymin:g}; DSTL grid sizes have Xmax > 0 and Ymin < 0."
                    )
                sizes[row[0].strip()] = (xmax, ymin)
    except FileNotFoundError:
        raise LabelError(
            f"{source}: no such file. DSTL labels need the grid-sizes CSV (ImageId, Xmax, Ymin)."
        ) from None
    except UnicodeDecodeError:
        raise LabelError(f"{source}: not a text CSV file.") from None
    if not sizes:
        raise LabelError(f"{source}: no grid sizes in the file.")
    return sizes


def _scaled_size(pixels: int) -> float:
    """The competition's W' = W^2 / (W + 1) (and H' likewise)."""
    if pixels < 1:
        raise LabelError(f"image size {pixels} px is not positive.")
    return pixels * pixels / (pixels + 1)


def normalized_to_pixel_transform(xmax: float, ymin: float, height: int, width: int) -> Affine:
    """Normalized DSTL (x, y) -> pixel (col, row) of a `height` x `width` image.

    Pixel coordinates put (0, 0) at the top-left corner of the top-left pixel.

    Example:
        >>> t = normalized_to_pixel_transform(0.01, -0.009, height=9, width=10)
        >>> col, row = t @ (0.01, -0.009)
        >>> round(col, 6), round(row, 6)  # W' = 100/11, H' = 81/10
        (9.090909, 8.1)
    """
    if not (xmax > 0 and ymin < 0):
        raise LabelError(f"DSTL grid size Xmax={xmax:g}, Ymin={ymin:g}: need Xmax > 0, Ymin < 0.")
    return Affine(_scaled_size(width) / xmax, 0.0, 0.0, 0.0, _scaled_size(height) / ymin, 0.0)


def pixel_to_normalized_transform(xmax: float, ymin: float, height: int, width: int) -> Affine:
    """Pixel (col, row) of a `height` x `width` image -> normalized DSTL (x, y); the inverse."""
    inverse: Affine = ~normalized_to_pixel_transform(xmax, ymin, height, width)
    return inverse


def transform_geometry(geometry: BaseGeometry, transform: Affine) -> BaseGeometry:
    """Apply an `Affine` to a shapely geometry (shapely's parameter order differs)."""
    from shapely.affinity import affine_transform

    return affine_transform(geometry, transform.to_shapely())


def read_wkt_csv(path: str | os.PathLike[str]) -> list[WktRow]:
    """All rows of a DSTL WKT CSV (`ImageId, ClassType, MultipolygonWKT`), header checked.

    The WKT stays text here: parsing every multipolygon of a 100 MB file up front is the
    caller's choice, per image.
    """
    source = Path(path)
    _allow_huge_fields()
    rows: list[WktRow] = []
    try:
        with source.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                return rows
            if tuple(cell.strip() for cell in header[:3]) != WKT_HEADER:
                raise LabelError(
                    f"{source}: header {header!r} is not {','.join(WKT_HEADER)}; "
                    "is this a DSTL WKT CSV?"
                )
            for line_number, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) < 3:
                    raise LabelError(
                        f"{source}:{line_number}: expected 3 columns "
                        f"({', '.join(WKT_HEADER)}), got {len(row)}."
                    )
                rows.append(WktRow(row[0].strip(), row[1].strip(), row[2].strip()))
    except FileNotFoundError:
        raise LabelError(f"{source}: no such file.") from None
    except UnicodeDecodeError:
        raise LabelError(f"{source}: not a text CSV file.") from None
    return rows


def parse_wkt(text: str, *, where: str = "") -> BaseGeometry:
    """Shapely geometry from WKT text, with a LabelError naming `where` when it is not WKT."""
    try:
        geometry = shapely.from_wkt(text)
    except shapely.errors.GEOSException as error:
        raise LabelError(f"{where}: invalid WKT ({error}).") from None
    if geometry is None:
        return shapely.from_wkt(EMPTY_WKT)
    return geometry


def write_wkt_csv(
    path: str | os.PathLike[str],
    rows: Iterable[tuple[str, str | int, str | BaseGeometry]],
    *,
    overwrite: bool = True,
    rounding_precision: int = 8,
) -> None:
    """Write a DSTL WKT CSV atomically; geometries are written as WKT, empty ones as
    `MULTIPOLYGON EMPTY` (what the competition expected).

    `rounding_precision` decimals: DSTL's normalized pixel is ~3e-6 wide, so 8 decimals keep
    vertices exact to 1 % of a pixel while keeping files small.
    """
    with (
        atomic_path(path, overwrite=overwrite) as temporary,
        temporary.open("w", newline="", encoding="utf-8") as handle,
    ):
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(WKT_HEADER)
        for image_id, class_type, geometry in rows:
            if isinstance(geometry, BaseGeometry):
                text = (
                    EMPTY_WKT
                    if geometry.is_empty
                    else shapely.to_wkt(geometry, rounding_precision=rounding_precision, trim=True)
                )
            else:
                text = geometry or EMPTY_WKT
            writer.writerow((image_id, str(class_type), text))


def write_grid_sizes(
    path: str | os.PathLike[str],
    sizes: dict[str, tuple[float, float]],
    *,
    overwrite: bool = True,
) -> None:
    """Write a grid-sizes CSV (`ImageId,Xmax,Ymin`) that `read_grid_sizes` reads back."""
    with (
        atomic_path(path, overwrite=overwrite) as temporary,
        temporary.open("w", newline="", encoding="utf-8") as handle,
    ):
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(GRID_SIZES_HEADER)
        for image_id, (xmax, ymin) in sizes.items():
            writer.writerow((image_id, repr(float(xmax)), repr(float(ymin))))
