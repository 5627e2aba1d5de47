"""Sub-pixel co-registration of the files of one scene by phase correlation.

Sensors of one scene are often a few pixels apart (the DSTL teams registered the M and A images
to the RGB one before training). We estimate each file's shift against the reference file on a
shared signal (a named band, or the edges of each file's bands) and apply it when
the stack is opened again (`open_stack(..., shifts_px=...)`), so nothing is resampled twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence

import numpy as np
from rasterio.windows import Window

from spectraseg.errors import RasterError
from spectraseg.io.rasters import open_stack

log = logging.getLogger(__name__)

Shift = tuple[float, float]


def _upsampled_dft(
    spectrum: np.ndarray, region: int, factor: int, offset: tuple[float, float]
) -> np.ndarray:
    """Inverse DFT of `spectrum` on a `region` x `region` patch of a grid `factor` times finer.

    A matrix-multiply DFT evaluated only near the peak: sub-pixel precision without the
    memory of zero-padding the whole spectrum (Guizar-Sicairos et al., 2008).
    """
    rows, cols = spectrum.shape
    row_freq = np.fft.ifftshift(np.arange(rows)) - rows // 2
    col_freq = np.fft.ifftshift(np.arange(cols)) - cols // 2
    sample = np.arange(region) - offset[0]
    row_kernel = np.exp(2j * np.pi / (rows * factor) * np.outer(sample, row_freq))
    sample = np.arange(region) - offset[1]
    col_kernel = np.exp(2j * np.pi / (cols * factor) * np.outer(col_freq, sample))
    result: np.ndarray = row_kernel @ spectrum @ col_kernel
    return result


def estimate_shift(reference: np.ndarray, moving: np.ndarray, *, upsample: int = 50) -> Shift:
    """(row, col) displacement of `moving` relative to `reference`, to 1/`upsample` px.

    `moving[r, c]` shows what `reference[r - dy, c - dx]` shows. Both are 2-D arrays of one
    shape; a Hann taper suppresses the edges, whose wrap-around would otherwise dominate.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> image = rng.random((64, 64))
        >>> estimate_shift(image, np.roll(image, (3, -2), axis=(0, 1)))
        (3.0, -2.0)
    """
    if reference.shape != moving.shape or reference.ndim != 2:
        raise ValueError(f"shapes {reference.shape} and {moving.shape} must be equal and 2-D")
    taper = np.outer(np.hanning(reference.shape[0]), np.hanning(reference.shape[1]))
    a = np.fft.fft2((reference - reference.mean()) * taper)
    b = np.fft.fft2((moving - moving.mean()) * taper)
    cross = b * np.conj(a)
    # Partial whitening: phase correlation sharpens the peak, but full whitening lets the noise
    # of frequencies one image lacks (a blurry, coarser sensor) drown it.
    magnitude = np.abs(cross)
    cross /= np.sqrt(magnitude) + 1e-12 * magnitude.max()
    correlation = np.fft.ifft2(cross).real
    peak = np.array(np.unravel_index(np.argmax(correlation), correlation.shape), dtype=float)
    size = np.array(correlation.shape)
    peak[peak > size // 2] -= size[peak > size // 2]
    region = int(np.ceil(upsample * 1.5))
    centre = region // 2
    refined = _upsampled_dft(
        cross, region, upsample, (centre - peak[0] * upsample, centre - peak[1] * upsample)
    )
    fine = np.array(np.unravel_index(np.argmax(np.abs(refined)), refined.shape), dtype=float)
    shift = peak + (fine - centre) / upsample
    return (round(float(shift[0]), 6) + 0.0, round(float(shift[1]), 6) + 0.0)


def _edge_signal(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Mean gradient magnitude of the bands, each scaled to unit spread.

    Edges sit in the same places in every band even where brightness inverts (vegetation is
    dark in red and bright in NIR), so they are a signal two sensors share when no band is.
    """
    pixels = image[:, valid] if valid.any() else image.reshape(image.shape[0], -1)
    spread = pixels.std(axis=1) + 1e-9
    scaled = image / spread[:, None, None]
    rows, cols = np.gradient(scaled, axis=(1, 2))
    magnitude = np.hypot(rows, cols)
    magnitude[:, ~valid] = 0.0
    result: np.ndarray = magnitude.mean(axis=0)
    return result


def estimate_stack_shifts(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    reference: str | os.PathLike[str] | None = None,
    bands: Mapping[str, str] | None = None,
    max_window_px: int = 1024,
    upsample: int = 50,
) -> dict[str, Shift]:
    """Each file's (row, col) shift in reference-grid pixels against the reference file.

    Args:
        inputs: the files of one scene, as given to `open_stack`.
        reference: the file the others are registered to (default: the stack's reference grid's
            file, i.e. the finest).
        bands: optional band names to compare, by file name, e.g. {"x_M.tif": "red",
            "x.tif": "rgb_red"}; files not named compare their edges (mean gradient magnitude).
        max_window_px: the central window used, to bound memory and time.

    Returns:
        {file name: (dy, dx)}, ready for `open_stack(..., shifts_px=...)`.
    """
    with open_stack(list(inputs), reference=reference) as stack:
        height, width = stack.shape
        size_h, size_w = min(height, max_window_px), min(width, max_window_px)
        window = Window((width - size_w) // 2, (height - size_h) // 2, size_w, size_h)
        image, valid = stack.read(window)
        names = list(stack.band_names)
        file_bands: dict[str, np.ndarray] = {}
        factors: dict[str, int] = {}
        start = 0
        for source in stack._files:
            count = len(source.names)
            chosen = (bands or {}).get(source.path.name)
            if chosen is not None:
                if chosen not in source.names:
                    raise RasterError(
                        f"{source.path}: no band {chosen!r} to co-register on; "
                        f"bands are {', '.join(source.names)}."
                    )
                file_bands[source.path.name] = image[names.index(chosen)][None]
            else:
                file_bands[source.path.name] = image[start : start + count]
            factors[source.path.name] = max(1, round(stack.grid.width / source.dataset.width))
            start += count
        reference_name = os.path.basename(os.fspath(reference)) if reference else _finest(stack)
    shifts: dict[str, Shift] = {}
    for name, pixels in file_bands.items():
        if name == reference_name:
            continue
        # Compare at the coarser file's own resolution: upsampled, it holds no finer detail,
        # and the reference's finer detail would only add noise to the correlation.
        factor = factors[name]
        coarse_valid = _block_mean(valid[None].astype(np.float32), factor)[0] == 1.0
        moving = _edge_signal(_block_mean(pixels, factor), coarse_valid)
        fixed = _edge_signal(_block_mean(file_bands[reference_name], factor), coarse_valid)
        dy, dx = estimate_shift(fixed, moving, upsample=upsample)
        shifts[name] = (dy * factor, dx * factor)
        log.info(
            "%s: shift against %s is %+.2f rows, %+.2f columns", name, reference_name, *shifts[name]
        )
    return shifts


def _block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    """(C, H, W) averaged over factor x factor blocks (edges that do not fill a block dropped)."""
    if factor == 1:
        return image
    channels, height, width = image.shape
    rows, cols = height // factor, width // factor
    blocks = image[:, : rows * factor, : cols * factor].reshape(
        channels, rows, factor, cols, factor
    )
    result: np.ndarray = blocks.mean(axis=(2, 4))
    return result


def _finest(stack: object) -> str:
    files = stack._files  # type: ignore[attr-defined]
    grid = stack.grid  # type: ignore[attr-defined]
    for source in files:
        if (source.dataset.width, source.dataset.height) == (grid.width, grid.height):
            return str(source.path.name)
    return str(files[0].path.name)
