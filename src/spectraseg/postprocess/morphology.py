"""Per-class mask clean-up: opening, closing, boundary smoothing, hole filling, small objects.

Every operation is local: what it does to a pixel depends only on pixels within a known number
of rows (`halo_px`), so a scene can be cleaned strip by strip with that many extra rows above and
below each strip and give exactly the whole-scene result. Hole filling and the minimum object
area are local too because both are bounded by an area: a hole or an object of fewer than A
pixels cannot span more than A rows.

Connectivity: objects are 4-connected (pixels touching only at a corner are separate objects,
as in the polygons written later), so holes are 8-connected background regions enclosed by an
object and not reaching the image border. Outside the image the mask is taken to continue as it
is at the border (edge padding), so objects touching the border are not eroded by it.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import model_validator
from scipy import ndimage

from spectraseg.errors import ConfigError
from spectraseg.grid import Grid
from spectraseg.postprocess.units import square_metres_to_pixels
from spectraseg.settings import Settings

# Objects: 4-connected. Holes: the complementary 8-connectivity of the background.
OBJECT_STRUCTURE = ndimage.generate_binary_structure(2, 1)
HOLE_STRUCTURE = ndimage.generate_binary_structure(2, 2)
# Gaussian smoothing reaches int(4 sigma + 0.5) pixels (scipy's default truncate=4).
GAUSSIAN_TRUNCATE = 4.0


class MorphologySettings(Settings):
    """Clean-up of one class's mask, applied in this order: opening, closing, smoothing, hole
    filling, minimum area. Zero (the default) turns a step off.

    Areas may be given in pixels or square metres (not both); square metres need a CRS.
    """

    opening_px: int = 0  # disk radius: removes specks and spurs thinner than 2r + 1 pixels
    closing_px: int = 0  # disk radius: closes gaps and notches narrower than 2r + 1 pixels
    smooth_px: float = 0.0  # Gaussian sigma: rounds staircase boundaries ("smoother masks")
    fill_holes_below_px: float = 0.0  # holes of fewer pixels are filled
    fill_holes_below_m2: float = 0.0
    min_area_px: float = 0.0  # objects of fewer pixels are removed
    min_area_m2: float = 0.0

    @model_validator(mode="after")
    def _check(self) -> MorphologySettings:
        for name in type(self).model_fields:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for stem in ("fill_holes_below", "min_area"):
            if getattr(self, f"{stem}_px") and getattr(self, f"{stem}_m2"):
                raise ValueError(f"give {stem}_px or {stem}_m2, not both")
        return self

    def in_pixels(self, grid: Grid | None) -> PixelMorphology:
        """The same settings with every size in pixels of `grid` (needed for *_m2 values)."""

        def area(stem: str) -> float:
            square_metres = float(getattr(self, f"{stem}_m2"))
            if not square_metres:
                return float(getattr(self, f"{stem}_px"))
            if grid is None:
                raise ConfigError(f"morphology.{stem}_m2 needs a raster grid to convert.")
            return square_metres_to_pixels(square_metres, grid, what=f"morphology.{stem}_m2")

        return PixelMorphology(
            opening_px=self.opening_px,
            closing_px=self.closing_px,
            smooth_px=self.smooth_px,
            fill_holes_below_px=area("fill_holes_below"),
            min_area_px=area("min_area"),
        )


class PixelMorphology(Settings):
    """`MorphologySettings` resolved on a grid: every size in pixels."""

    opening_px: int = 0
    closing_px: int = 0
    smooth_px: float = 0.0
    fill_holes_below_px: float = 0.0
    min_area_px: float = 0.0

    @property
    def halo_px(self) -> int:
        """Rows beyond a strip that `clean_mask` needs to give the whole-scene result there."""
        return (
            2 * self.opening_px
            + 2 * self.closing_px
            + smoothing_radius(self.smooth_px)
            + area_reach(self.fill_holes_below_px)
            + area_reach(self.min_area_px)
        )

    @property
    def is_identity(self) -> bool:
        return self.halo_px == 0


def smoothing_radius(sigma: float) -> int:
    """How far a Gaussian of `sigma` pixels reaches (0 when off)."""
    return int(GAUSSIAN_TRUNCATE * sigma + 0.5) if sigma > 0 else 0


def area_reach(area_px: float) -> int:
    """Rows an area-limited operation looks at: a region under `area_px` pixels spans fewer
    rows, and its border pixels lie one row further."""
    return math.ceil(area_px) + 1 if area_px > 0 else 0


def disk(radius: int) -> np.ndarray:
    """(2r + 1, 2r + 1) bool disk structuring element.

    Example:
        >>> disk(1).astype(int).tolist()
        [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    """
    offsets = np.arange(-radius, radius + 1)
    return np.asarray(offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius * radius)


def _padded(operation: str, mask: np.ndarray, radius: int) -> np.ndarray:
    padded = np.pad(mask, radius, mode="edge")
    function = ndimage.binary_erosion if operation == "erode" else ndimage.binary_dilation
    result = function(padded, structure=disk(radius))
    return np.asarray(result[radius:-radius, radius:-radius], dtype=bool)


def open_mask(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """Erosion then dilation by a disk: removes what the disk does not fit in.

    Example:
        >>> mask = np.zeros((5, 7), bool); mask[1:4, 1:4] = True; mask[2, 5] = True
        >>> open_mask(mask, 1).astype(int)[2].tolist()  # the lone pixel goes, the square stays
        [0, 1, 1, 1, 0, 0, 0]
    """
    if radius_px <= 0:
        return mask.copy()
    return _padded("dilate", _padded("erode", mask, radius_px), radius_px)


def close_mask(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """Dilation then erosion by a disk: fills gaps the disk cannot pass through."""
    if radius_px <= 0:
        return mask.copy()
    return _padded("erode", _padded("dilate", mask, radius_px), radius_px)


def smooth_mask(mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """Blur the mask with a Gaussian and keep what stays above one half: rounded outlines."""
    if sigma_px <= 0:
        return mask.copy()
    blurred = ndimage.gaussian_filter(
        mask.astype(np.float32), sigma_px, mode="nearest", truncate=GAUSSIAN_TRUNCATE
    )
    return np.asarray(blurred > 0.5)


def fill_small_holes(mask: np.ndarray, below_px: float) -> np.ndarray:
    """Fill holes (background regions not reaching the border) of fewer than `below_px` pixels.

    Example:
        >>> ring = np.ones((5, 5), bool); ring[2, 2] = False
        >>> bool(fill_small_holes(ring, 2)[2, 2]), bool(fill_small_holes(ring, 1)[2, 2])
        (True, False)
    """
    if below_px <= 0 or mask.all():
        return mask.copy()
    labels, count = ndimage.label(~mask, structure=HOLE_STRUCTURE)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    small = sizes < below_px
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    small[border] = False
    small[0] = False
    return np.asarray(mask | small[labels])


def remove_small_objects(mask: np.ndarray, below_px: float) -> np.ndarray:
    """Remove 4-connected objects of fewer than `below_px` pixels.

    Example:
        >>> mask = np.zeros((3, 6), bool); mask[0, 0] = True; mask[:, 3:] = True
        >>> int(remove_small_objects(mask, 2).sum()), int(remove_small_objects(mask, 10).sum())
        (9, 0)
    """
    if below_px <= 0 or not mask.any():
        return mask.copy()
    labels, count = ndimage.label(mask, structure=OBJECT_STRUCTURE)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= below_px
    keep[0] = False
    return np.asarray(keep[labels])


def clean_mask(mask: np.ndarray, settings: PixelMorphology) -> np.ndarray:
    """All steps of `settings` on one (H, W) bool mask, in the documented order; a new array."""
    result = open_mask(mask, settings.opening_px)
    result = close_mask(result, settings.closing_px)
    result = smooth_mask(result, settings.smooth_px)
    result = fill_small_holes(result, settings.fill_holes_below_px)
    return remove_small_objects(result, settings.min_area_px)
