"""The D4 group (4 rotations x mirror) on the last two axes, and random patch augmentation.

Overhead imagery has no preferred "up", so each of the 8 rotations and reflections of a patch is an
equally valid training sample, and averaging a model over them at prediction time (test-time
augmentation) cancels orientation biases. The same `D4Transform` works on numpy arrays and torch
tensors, so training (numpy patches) and prediction (tensor batches) share one definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
from pydantic import Field

from spectraseg.errors import ConfigError
from spectraseg.settings import Settings

__all__ = ["D4", "AugmentSettings", "D4Transform", "augment", "tta_transforms"]

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

# Indexed by (flip, rotations). "transpose" swaps rows and columns (mirror on the main diagonal).
_NAMES = {
    (False, 0): "identity",
    (False, 1): "rot90",
    (False, 2): "rot180",
    (False, 3): "rot270",
    (True, 0): "hflip",
    (True, 1): "transpose",
    (True, 2): "vflip",
    (True, 3): "antitranspose",
}


@dataclass(frozen=True)
class D4Transform:
    """One element of D4: mirror left-right (if `flip`), then rotate counter-clockwise.

    Acts on the last two axes (rows, columns) of a numpy array or torch tensor, so the same
    transform applies to an image (C, H, W), a mask (K, H, W), an ignore map (H, W) or a batch.
    Numpy results are contiguous copies (ready for `torch.from_numpy`); tensors come back as new
    tensors, except that the identity returns its input. Inputs are never changed.

    Example:
        >>> D4Transform(1, False)(np.array([[1, 2], [3, 4]])).tolist()
        [[2, 4], [1, 3]]
    """

    rotations: int
    flip: bool

    def __post_init__(self) -> None:
        if self.rotations not in range(4):
            raise ValueError(f"rotations must be 0 to 3 quarter turns, got {self.rotations}")

    def __call__(self, array: ArrayT) -> ArrayT:
        if isinstance(array, torch.Tensor):
            if self.flip:
                array = torch.flip(array, dims=(-1,))
            if self.rotations:
                array = torch.rot90(array, self.rotations, dims=(-2, -1))
            return array
        result = np.flip(array, axis=-1) if self.flip else array
        # A C-ordered copy even for the identity: callers may change the result in place.
        return np.rot90(result, self.rotations, axes=(-2, -1)).copy()

    def inverse(self) -> D4Transform:
        """The transform that undoes this one: reflections are their own inverse."""
        if self.flip:
            return self
        return D4Transform((4 - self.rotations) % 4, False)

    def compose(self, first: D4Transform) -> D4Transform:
        """The transform `x -> self(first(x))`, which is again in D4.

        Moving a mirror past a rotation reverses the rotation (F R = R^-1 F), so
        R^a F^f R^b F^g = R^(a ± b) F^(f xor g).
        """
        turns = -first.rotations if self.flip else first.rotations
        return D4Transform((self.rotations + turns) % 4, self.flip != first.flip)

    @property
    def name(self) -> str:
        """A readable name: identity, rot90, rot180, rot270, hflip, transpose, vflip, ..."""
        return _NAMES[(self.flip, self.rotations)]

    @classmethod
    def from_name(cls, name: str) -> D4Transform:
        """The transform called `name` (see `name`)."""
        for (flip, rotations), known in _NAMES.items():
            if known == name:
                return cls(rotations, flip)
        raise ConfigError(f"unknown D4 transform {name!r}; known: {', '.join(_NAMES.values())}")


D4: tuple[D4Transform, ...] = tuple(
    D4Transform(rotations, flip) for flip in (False, True) for rotations in range(4)
)

# Subsets for test-time augmentation, each closed under inversion, cheapest first.
_TTA_NAMES = {
    1: ("identity",),
    2: ("identity", "hflip"),
    4: ("identity", "hflip", "vflip", "rot180"),
    8: tuple(transform.name for transform in D4),
}


def tta_transforms(count: int) -> tuple[D4Transform, ...]:
    """The transforms to average over for test-time augmentation with `count` passes (1, 2, 4, 8).

    Example:
        >>> [transform.name for transform in tta_transforms(2)]
        ['identity', 'hflip']
    """
    if count not in _TTA_NAMES:
        raise ConfigError(f"test-time augmentation takes 1, 2, 4 or 8 transforms, got {count}")
    return tuple(D4Transform.from_name(name) for name in _TTA_NAMES[count])


class AugmentSettings(Settings):
    """Random changes applied to each training patch."""

    d4: bool = True
    """A random rotation/reflection of the patch (image, masks and ignore together)."""
    gain: float = Field(default=0.0, ge=0.0, lt=1.0)
    """Largest relative change of each band's scale: each band is multiplied by 1 ± gain."""
    offset: float = Field(default=0.0, ge=0.0)
    """Largest shift added to each band, in image units (standard deviations once normalized)."""
    noise_std: float = Field(default=0.0, ge=0.0)
    """Standard deviation of Gaussian noise added to every pixel, in image units."""


def augment(
    image: np.ndarray,
    mask: np.ndarray,
    ignore: np.ndarray,
    rng: np.random.Generator,
    settings: AugmentSettings,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random augmentation of a patch; the same D4 transform moves image, mask and ignore.

    Radiometric changes (gain, offset, noise) imitate sensor calibration and illumination
    differences between scenes; they touch only the image. Inputs are left unchanged.

    Args:
        image: (C, H, W) float.
        mask: (K, H, W) class masks.
        ignore: (H, W) bool, pixels excluded from the loss.
        rng: the source of randomness, owned by the caller (one per DataLoader worker).

    Returns:
        New (image, mask, ignore) arrays, contiguous, with the input dtypes.
    """
    if settings.d4:
        transform = D4[int(rng.integers(len(D4)))]
        image, mask, ignore = transform(image), transform(mask), transform(ignore)
    else:
        image, mask, ignore = image.copy(), mask.copy(), ignore.copy()
    channels = image.shape[0]
    if settings.gain:
        scale = 1.0 + rng.uniform(-settings.gain, settings.gain, size=(channels, 1, 1))
        image *= scale.astype(image.dtype)
    if settings.offset:
        shift = rng.uniform(-settings.offset, settings.offset, size=(channels, 1, 1))
        image += shift.astype(image.dtype)
    if settings.noise_std:
        image += rng.normal(0.0, settings.noise_std, size=image.shape).astype(image.dtype)
    return image, mask, ignore
