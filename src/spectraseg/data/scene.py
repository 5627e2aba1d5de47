"""`Scene`: one area's pixels, validity, band names and grid, with its labels when it has any.

Shapes follow the project's naming: `image` (C, H, W) float32, `valid` (H, W) bool,
`mask` (K, H, W) bool (multi-label: a pixel may be in several classes), `ignore` (H, W) bool.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from spectraseg.grid import Grid


@dataclass(frozen=True, eq=False)
class Scene:
    """A scene in memory. Invalid pixels (nodata) are also ignored by losses and metrics."""

    name: str
    image: np.ndarray
    valid: np.ndarray
    band_names: tuple[str, ...]
    grid: Grid
    mask: np.ndarray | None = None
    ignore: np.ndarray | None = None
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        channels, height, width = self.image.shape
        if channels != len(self.band_names):
            raise ValueError(f"{self.name}: {channels} bands but {len(self.band_names)} names")
        if self.valid.shape != (height, width):
            raise ValueError(
                f"{self.name}: valid mask {self.valid.shape} != image {(height, width)}"
            )
        if self.mask is not None and self.mask.shape[1:] != (height, width):
            raise ValueError(
                f"{self.name}: mask {self.mask.shape} does not fit image {(height, width)}"
            )

    @property
    def num_bands(self) -> int:
        return int(self.image.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.image.shape[1]), int(self.image.shape[2]))

    @property
    def has_labels(self) -> bool:
        return self.mask is not None

    def ignored(self) -> np.ndarray:
        """(H, W) bool: pixels excluded from losses, metrics and statistics."""
        ignored = ~self.valid
        if self.ignore is not None:
            ignored = ignored | self.ignore
        return ignored

    def with_labels(
        self, mask: np.ndarray, ignore: np.ndarray | None, class_names: tuple[str, ...]
    ) -> Scene:
        return replace(self, mask=mask, ignore=ignore, class_names=class_names)

    def keep_classes(self, positions: tuple[int, ...], class_names: tuple[str, ...]) -> Scene:
        """The scene with only the classes at `positions` (the others become background);
        a scene without labels is returned as it is."""
        if self.mask is None:
            return self
        return self.with_labels(self.mask[list(positions)], self.ignore, class_names)

    def with_image(self, image: np.ndarray, band_names: tuple[str, ...]) -> Scene:
        return replace(self, image=image, band_names=band_names)
