"""Per-band statistics streamed over training scenes, and the normalization they define.

The statistics are computed once on the training scenes (valid pixels only), saved beside the
model as a small JSON with the band names, and applied identically at training and prediction:
a model trained on standardized bands sees garbage if prediction scales them differently, so
`normalize` refuses statistics whose band names differ from the image's.

Memory: the accumulator holds a few float64 numbers and one fixed-size histogram per band, so
scenes (or windows of a huge scene) can be fed one at a time. Percentiles come from that
histogram, whose range doubles (merging bin pairs) when new values fall outside it; they are
exact to within one bin, 1/4096 of the band's range.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from spectraseg.errors import BandError, ConfigError

Array = np.ndarray
NUM_BINS = 4096  # even, so that doubling the range merges bin pairs exactly


@dataclass(frozen=True)
class BandStats:
    """Per-band mean, standard deviation and low/high percentiles of valid pixels."""

    band_names: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    percentiles: tuple[float, float] = (2.0, 98.0)
    pixel_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers, for JSON files and checkpoints."""
        return {
            "band_names": list(self.band_names),
            "mean": list(self.mean),
            "std": list(self.std),
            "low": list(self.low),
            "high": list(self.high),
            "percentiles": list(self.percentiles),
            "pixel_count": self.pixel_count,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "band statistics") -> BandStats:
        try:
            names = tuple(str(n) for n in data["band_names"])
            values = {
                key: tuple(float(v) for v in data[key]) for key in ("mean", "std", "low", "high")
            }
            low_p, high_p = (float(p) for p in data.get("percentiles", (2.0, 98.0)))
            count = int(data.get("pixel_count", 0))
        except (KeyError, TypeError, ValueError) as error:
            raise ConfigError(f"{source}: not a band statistics file ({error!r}).") from None
        for key, column in values.items():
            if len(column) != len(names):
                raise ConfigError(f"{source}: {len(column)} '{key}' values for {len(names)} bands.")
        return cls(names, percentiles=(low_p, high_p), pixel_count=count, **values)


@dataclass
class _Histogram:
    """A fixed number of equal bins over [low, low + width * NUM_BINS), widened by doubling."""

    low: float = 0.0
    width: float = 0.0
    counts: Array = field(default_factory=lambda: np.zeros(NUM_BINS, dtype=np.int64))

    def add(self, values: Array) -> None:
        if values.size == 0:
            return
        vmin, vmax = float(values.min()), float(values.max())
        if self.width == 0.0:
            span = vmax - vmin
            self.low = vmin
            self.width = (span if span > 0 else max(abs(vmin), 1.0) * 1e-6) / (NUM_BINS - 1)
        while vmax >= self.low + self.width * NUM_BINS:
            self._double(keep_low=True)
        while vmin < self.low:
            self._double(keep_low=False)
        bins = ((values - self.low) / self.width).astype(np.int64)
        np.clip(bins, 0, NUM_BINS - 1, out=bins)
        self.counts += np.bincount(bins, minlength=NUM_BINS)

    def _double(self, *, keep_low: bool) -> None:
        merged = self.counts.reshape(-1, 2).sum(axis=1)
        self.counts = np.zeros(NUM_BINS, dtype=np.int64)
        if keep_low:
            self.counts[: NUM_BINS // 2] = merged
        else:
            self.counts[NUM_BINS // 2 :] = merged
            self.low -= self.width * NUM_BINS
        self.width *= 2

    def quantile(self, fraction: float) -> float:
        total = int(self.counts.sum())
        if total == 0:
            return 0.0
        cumulative = np.cumsum(self.counts)
        target = fraction * total
        index = int(np.searchsorted(cumulative, target, side="left"))
        index = min(index, NUM_BINS - 1)
        before = cumulative[index - 1] if index > 0 else 0
        inside = self.counts[index]
        offset = (target - before) / inside if inside else 0.0
        return float(self.low + self.width * (index + offset))


class BandStatsAccumulator:
    """Feed (image, valid) pairs one at a time; `result()` gives the statistics of all of them.

    Mean and variance are merged per chunk (Chan et al.'s parallel update) in float64, which
    stays exact where a running sum of squares would cancel.
    """

    def __init__(
        self, band_names: Sequence[str], *, percentiles: tuple[float, float] = (2.0, 98.0)
    ):
        if not 0 <= percentiles[0] < percentiles[1] <= 100:
            raise ConfigError(f"percentiles {percentiles}: need 0 <= low < high <= 100.")
        self.band_names = tuple(band_names)
        self.percentiles = percentiles
        channels = len(self.band_names)
        self._count = np.zeros(channels, dtype=np.int64)
        self._mean = np.zeros(channels, dtype=np.float64)
        self._m2 = np.zeros(channels, dtype=np.float64)
        self._histograms = [_Histogram() for _ in range(channels)]

    def add(self, image: Array, valid: Array, band_names: Sequence[str] | None = None) -> None:
        """Add the valid, finite pixels of a (C, H, W) image."""
        if band_names is not None:
            check_band_names(tuple(band_names), self.band_names, what="image")
        if image.shape[0] != len(self.band_names):
            raise BandError(f"image has {image.shape[0]} bands; expected {len(self.band_names)}.")
        for channel in range(image.shape[0]):
            values = image[channel][valid].astype(np.float64)
            values = values[np.isfinite(values)]
            count = values.size
            if count == 0:
                continue
            mean = float(values.mean())
            m2 = float(((values - mean) ** 2).sum())
            total = self._count[channel] + count
            delta = mean - self._mean[channel]
            self._mean[channel] += delta * count / total
            self._m2[channel] += m2 + delta**2 * self._count[channel] * count / total
            self._count[channel] = total
            self._histograms[channel].add(values)

    def result(self) -> BandStats:
        """The statistics so far; a band with no valid pixel is an error."""
        empty = [n for n, c in zip(self.band_names, self._count, strict=True) if c == 0]
        if empty:
            raise BandError(
                f"no valid pixel in band(s) {', '.join(empty)}: cannot compute statistics. "
                "Check the nodata value and the training scenes."
            )
        std = np.sqrt(self._m2 / self._count)
        low_fraction, high_fraction = (p / 100 for p in self.percentiles)
        return BandStats(
            band_names=self.band_names,
            mean=tuple(float(v) for v in self._mean),
            std=tuple(float(v) for v in std),
            low=tuple(h.quantile(low_fraction) for h in self._histograms),
            high=tuple(h.quantile(high_fraction) for h in self._histograms),
            percentiles=self.percentiles,
            pixel_count=int(self._count.max()),
        )


def compute_band_stats(
    images: Iterable[tuple[Array, Array]],
    band_names: Sequence[str],
    *,
    percentiles: tuple[float, float] = (2.0, 98.0),
) -> BandStats:
    """Statistics over (image, valid) pairs streamed one at a time (scenes or windows).

    Example:
        >>> image = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
        >>> stats = compute_band_stats([(image, np.ones((2, 2), bool))], ["a", "b"])
        >>> stats.mean, stats.std
        ((1.5, 5.5), (1.118033988749895, 1.118033988749895))
    """
    accumulator = BandStatsAccumulator(band_names, percentiles=percentiles)
    for image, valid in images:
        accumulator.add(image, valid)
    return accumulator.result()


def check_band_names(actual: tuple[str, ...], expected: tuple[str, ...], *, what: str) -> None:
    """BandError naming the missing and unexpected bands when two band lists differ."""
    if actual == expected:
        return
    missing = [n for n in expected if n not in actual]
    extra = [n for n in actual if n not in expected]
    detail = []
    if missing:
        detail.append(f"missing {', '.join(missing)}")
    if extra:
        detail.append(f"unexpected {', '.join(extra)}")
    if not detail:
        detail.append(f"order {', '.join(actual)} instead of {', '.join(expected)}")
    raise BandError(
        f"{what} bands do not match the normalization statistics ({'; '.join(detail)}). "
        "Use the same bands and indices as at training."
    )


def normalize(
    image: Array,
    stats: BandStats,
    method: Literal["standard", "percentile"] = "standard",
    *,
    band_names: Sequence[str] | None = None,
    valid: Array | None = None,
    clip: bool = True,
) -> Array:
    """A normalized float32 copy of a (C, H, W) image.

    `standard`: (x - mean) / std. `percentile`: (x - low) / (high - low), so the low and high
    percentiles land on 0 and 1, clipped to [0, 1] when `clip`. Constant bands (std or range 0)
    are only shifted. Pixels outside `valid`, and non-finite ones, become 0.
    """
    if band_names is not None:
        check_band_names(tuple(band_names), stats.band_names, what="image")
    if image.shape[0] != len(stats.band_names):
        raise BandError(
            f"image has {image.shape[0]} bands; the statistics have {len(stats.band_names)} "
            f"({', '.join(stats.band_names)})."
        )
    if method == "standard":
        shift = np.asarray(stats.mean, dtype=np.float32)
        scale = np.asarray(stats.std, dtype=np.float32)
    elif method == "percentile":
        shift = np.asarray(stats.low, dtype=np.float32)
        scale = np.asarray(stats.high, dtype=np.float32) - shift
    else:
        raise ConfigError(f"normalization method {method!r}: use 'standard' or 'percentile'.")
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
    out = (image.astype(np.float32) - shift[:, None, None]) / scale[:, None, None]
    if method == "percentile" and clip:
        np.clip(out, 0.0, 1.0, out=out)
    bad = ~np.isfinite(out)
    if valid is not None:
        bad |= ~valid[None]
    out[bad] = 0.0
    return out
