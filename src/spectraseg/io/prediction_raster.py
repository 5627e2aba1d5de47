"""The prediction-raster format: what `spectraseg predict` writes and everything else reads.

The one module that knows the format (tags, probability encoding, mask encoding), so writer and
reader cannot drift apart:
- `<stem>_probs.tif`: one band per class, described by the class name. float32 with NaN as
  nodata, or uint8 holding round(254 x p) with 255 as nodata (tag
  SPECTRASEG_PROBABILITY_SCALE=254).
- `<stem>_mask.tif`: multi-label (sigmoid head): one 0/1 band per class; multi-class (softmax
  head): one band of class ids (classes.yaml ids; 1..K when the model has none). 255 is
  nodata (65535 in uint16, when an id is above 254).
- `<stem>_classes.tif`: the class map GIS tools show as it is: one band holding the class id
  of each pixel (the most probable class above its threshold for a sigmoid head, the most
  probable class for a softmax head; 0 for none), a colour table from the classes' colours,
  and `<stem>_classes.qml` beside it, the QGIS style naming each class (`io/qgis_style.py`).
All carry SPECTRASEG_KIND (probabilities | mask), SPECTRASEG_CLASSES and
SPECTRASEG_THRESHOLDS (JSON lists), SPECTRASEG_HEAD (sigmoid | softmax) and, when the model
card knows them, SPECTRASEG_CLASS_IDS (the classes.yaml ids, a JSON list) tags; single-band id
rasters carry SPECTRASEG_MASK_VALUES=ids (files written before it hold positions 0..K-1).

Reading back: class names come from the SPECTRASEG_CLASSES tag, else the band descriptions,
else the `classes` given by the caller (`--classes`); a raster with none of them is an error
that says so. Class ids come from a classes file when one is given, else the
SPECTRASEG_CLASS_IDS tag, else 1..K. Rasters from elsewhere (no tags) work too: the kind
then follows the `_probs`/`_mask` name or the data type (floats are probabilities, integers
masks); a single band with several classes given holds their classes.yaml ids (0 background),
nodata only where the raster declares one.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

import numpy as np
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from spectraseg.classes import ClassList, Colour
from spectraseg.errors import ConfigError, LabelError, RasterError, did_you_mean
from spectraseg.grid import Grid
from spectraseg.io.geotiff import RasterWriter
from spectraseg.io.rasters import grid_of, open_dataset
from spectraseg.models.head import Head

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
Kind = Literal["probabilities", "mask"]
RGBA = tuple[int, int, int, int]
DEFAULT_COLOUR: Colour = (128, 128, 128)
KIND_TAG = "SPECTRASEG_KIND"
CLASSES_TAG = "SPECTRASEG_CLASSES"
THRESHOLDS_TAG = "SPECTRASEG_THRESHOLDS"
CLASS_IDS_TAG = "SPECTRASEG_CLASS_IDS"
HEAD_TAG = "SPECTRASEG_HEAD"
SCALE_TAG = "SPECTRASEG_PROBABILITY_SCALE"
MASK_VALUES_TAG = "SPECTRASEG_MASK_VALUES"
COLOURS_TAG = "SPECTRASEG_CLASS_COLOURS"
MASK_NODATA = 255
ID_NODATA_UINT16 = 65535
PROBABILITY_SCALE = 254  # uint8 probabilities: round(254 p), so that 255 stays free for nodata
DEFAULT_UINT8_SCALE = float(PROBABILITY_SCALE)
PREDICTION_SUFFIXES = ("_probs", "_mask", "_classes")


def output_paths(output: PathLike, stem: str) -> tuple[Path, Path]:
    """(probabilities, mask) paths for input `stem` in folder `output`."""
    folder = Path(output)
    return folder / f"{stem}_probs.tif", folder / f"{stem}_mask.tif"


def class_map_paths(output: PathLike, stem: str) -> tuple[Path, Path]:
    """(class map, its QGIS style) paths for input `stem` in folder `output`.

    QGIS applies a `.qml` named like the raster when it opens the raster.
    """
    folder = Path(output)
    return folder / f"{stem}_classes.tif", folder / f"{stem}_classes.qml"


def id_dtype(class_ids: Sequence[int]) -> tuple[str, int]:
    """(data type, nodata) of a raster of class ids: uint8 with 255, or uint16 with 65535.

    Example:
        >>> id_dtype([1, 2, 254]), id_dtype([1, 300])
        (('uint8', 255), ('uint16', 65535))
    """
    if max(class_ids, default=0) < MASK_NODATA:
        return "uint8", MASK_NODATA
    return "uint16", ID_NODATA_UINT16


def encode_probabilities(probs: np.ndarray, dtype: str) -> np.ndarray:
    """Probabilities (K, h, w) with NaN nodata as stored: float32, or uint8 254 x p / 255.

    Example:
        >>> encode_probabilities(np.array([[[0.0, 0.5, 1.0, np.nan]]]), "uint8").tolist()
        [[[0, 127, 254, 255]]]
    """
    if dtype == "float32":
        stored: np.ndarray = probs.astype(np.float32, copy=False)
        return stored
    scaled: np.ndarray = np.rint(np.nan_to_num(probs, nan=0.0) * PROBABILITY_SCALE).astype(np.uint8)
    scaled[np.isnan(probs)] = MASK_NODATA
    return scaled


def encode_mask(
    masks: np.ndarray, invalid: np.ndarray, head: Head, class_ids: Sequence[int]
) -> np.ndarray:
    """The mask raster's content for class masks (K, h, w) bool, nodata where `invalid` (h, w).

    Sigmoid heads: (K, h, w) 0/1, one band per class. Softmax heads: (1, h, w) the class id of
    the class each pixel is in (the masks of a softmax head are one-hot).

    Example:
        >>> masks = np.array([[[False, True, False]], [[True, False, False]]])
        >>> invalid = np.array([[False, False, True]])
        >>> encode_mask(masks, invalid, "sigmoid", [3, 7]).tolist()
        [[[0, 1, 255]], [[1, 0, 255]]]
        >>> encode_mask(masks, invalid, "softmax", [3, 7]).tolist()
        [[[7, 3, 255]]]
    """
    if head == "softmax":
        return encode_class_map(masks.astype(np.float32), masks, invalid, class_ids)
    dtype, nodata = id_dtype(())
    stored: np.ndarray = masks.astype(dtype)
    stored[:, invalid] = nodata
    return stored


def encode_class_map(
    probs: np.ndarray, masks: np.ndarray, invalid: np.ndarray, class_ids: Sequence[int]
) -> np.ndarray:
    """(1, h, w): the id of the most probable class each pixel is in, 0 in none, nodata invalid.

    Args:
        probs: (K, h, w) probabilities (NaN: no prediction).
        masks: (K, h, w) bool class masks by the head's rule (`models.head.class_masks`).
        class_ids: the classes' ids, in mask order.

    Example:
        >>> probs = np.array([[[0.9, 0.6, 0.1, 0.5]], [[0.7, 0.8, 0.2, 0.5]]])
        >>> masks = probs >= 0.5
        >>> invalid = np.array([[False, False, False, True]])
        >>> encode_class_map(probs, masks, invalid, [3, 7]).tolist()
        [[[3, 7, 0, 255]]]
    """
    dtype, nodata = id_dtype(class_ids)
    scores = np.where(masks, np.nan_to_num(probs, nan=-1.0), -1.0)
    best = np.argmax(scores, axis=0)
    ids = np.asarray(class_ids, dtype=dtype)
    stored: np.ndarray = np.where(masks.any(axis=0), ids[best], 0).astype(dtype)
    stored[invalid] = nodata
    return stored[None]


def output_tags(
    kind: Kind,
    class_names: Sequence[str],
    thresholds: Sequence[float],
    head: Head,
    class_ids: Sequence[int] | None = None,
    class_colours: Sequence[Colour] | None = None,
) -> dict[str, str]:
    """The tags every prediction raster carries."""
    tags = {
        KIND_TAG: kind,
        CLASSES_TAG: json.dumps(list(class_names)),
        THRESHOLDS_TAG: json.dumps([float(t) for t in thresholds]),
        HEAD_TAG: head,
    }
    if class_ids is not None:
        tags[CLASS_IDS_TAG] = json.dumps([int(i) for i in class_ids])
    if class_colours is not None:
        tags[COLOURS_TAG] = json.dumps([[int(c) for c in colour] for colour in class_colours])
    return tags


def probabilities_writer(
    path: Path,
    grid: Grid,
    class_names: Sequence[str],
    thresholds: Sequence[float],
    *,
    head: Head,
    dtype: Literal["float32", "uint8"],
    cog: bool,
    overwrite: bool,
    overviews: bool = False,
    class_ids: Sequence[int] | None = None,
    class_colours: Sequence[Colour] | None = None,
) -> RasterWriter:
    """The writer of `<stem>_probs.tif`: one band per class, float32 or uint8 254 x p."""
    tags = output_tags("probabilities", class_names, thresholds, head, class_ids, class_colours)
    if dtype == "uint8":
        tags[SCALE_TAG] = str(PROBABILITY_SCALE)
    return RasterWriter(
        path,
        grid,
        len(class_names),
        dtype,
        band_names=class_names,
        nodata=float("nan") if dtype == "float32" else MASK_NODATA,
        tags=tags,
        overwrite=overwrite,
        cog=cog,
        overviews=overviews,
    )


def mask_writer(
    path: Path,
    grid: Grid,
    class_names: Sequence[str],
    thresholds: Sequence[float],
    *,
    head: Head,
    cog: bool,
    overwrite: bool,
    overviews: bool = False,
    class_ids: Sequence[int] | None = None,
    class_colours: Sequence[Colour] | None = None,
) -> RasterWriter:
    """The writer of `<stem>_mask.tif`: a 0/1 band per class (sigmoid) or class ids."""
    multi_label = head == "sigmoid"
    ids = tuple(class_ids) if class_ids is not None else tuple(range(1, len(class_names) + 1))
    dtype, nodata = id_dtype(()) if multi_label else id_dtype(ids)
    tags = output_tags("mask", class_names, thresholds, head, class_ids, class_colours)
    if not multi_label:
        tags[MASK_VALUES_TAG] = "ids"
    return RasterWriter(
        path,
        grid,
        len(class_names) if multi_label else 1,
        dtype,
        band_names=class_names if multi_label else ("class",),
        nodata=nodata,
        tags=tags,
        overwrite=overwrite,
        cog=cog,
        overview_resampling="nearest",
        overviews=overviews,
    )


def class_map_writer(
    path: Path,
    grid: Grid,
    class_names: Sequence[str],
    thresholds: Sequence[float],
    *,
    head: Head,
    cog: bool,
    overwrite: bool,
    overviews: bool = False,
    class_ids: Sequence[int] | None = None,
    colours: Sequence[Colour] | None = None,
) -> RasterWriter:
    """The writer of `<stem>_classes.tif`: one band of class ids (0 none) with a colour table."""
    ids = tuple(class_ids) if class_ids is not None else tuple(range(1, len(class_names) + 1))
    dtype, nodata = id_dtype(ids)
    tags = output_tags("mask", class_names, thresholds, head, ids, colours)
    tags[MASK_VALUES_TAG] = "ids"
    return RasterWriter(
        path,
        grid,
        1,
        dtype,
        band_names=("class",),
        nodata=nodata,
        tags=tags,
        overwrite=overwrite,
        cog=cog,
        overview_resampling="nearest",
        overviews=overviews,
        colormap=colour_table(ids, colours or (DEFAULT_COLOUR,) * len(ids)),
    )


def colour_table(class_ids: Sequence[int], colours: Sequence[Colour]) -> dict[int, RGBA]:
    """The GDAL colour table of a class map: each class in its colour, 0 black.

    GeoTIFF keeps no alpha in colour tables; the `.qml` style leaves 0 out, so QGIS shows
    pixels in no class as transparent.

    Example:
        >>> colour_table([2], [(255, 0, 0)])
        {0: (0, 0, 0, 0), 2: (255, 0, 0, 255)}
    """
    table: dict[int, RGBA] = {0: (0, 0, 0, 0)}
    for class_id, (red, green, blue) in zip(class_ids, colours, strict=True):
        table[int(class_id)] = (red, green, blue, 255)
    return table


def thresholds_from_tag(text: str | None, num_classes: int, *, where: str) -> list[float] | None:
    """The thresholds a prediction raster carries in its SPECTRASEG_THRESHOLDS tag, if any."""
    if not text:
        return None
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(
            f"{where}: tag {THRESHOLDS_TAG} is not a JSON list ({text[:40]!r}); "
            "pass --thresholds FILE."
        ) from None
    if not isinstance(values, list) or len(values) != num_classes:
        raise ConfigError(
            f"{where}: tag {THRESHOLDS_TAG} holds {text[:40]!r}, not a list of {num_classes} "
            "thresholds; pass --thresholds FILE."
        )
    return [_threshold(value, f"{where}: {THRESHOLDS_TAG}") for value in values]


def _threshold(value: object, where: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: threshold {value!r} is not a number.") from None
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise ConfigError(f"{where}: threshold {number:g} is not between 0 and 1.")
    return number


def scene_name(path: str | os.PathLike[str]) -> str:
    """The scene a prediction file belongs to: its stem without `_probs` / `_mask`.

    Example:
        >>> scene_name("out/scene_000_probs.tif"), scene_name("labels/scene_000.geojson")
        ('scene_000', 'scene_000')
    """
    stem = Path(path).name.split(".")[0]
    for suffix in PREDICTION_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _kind_of(tags: dict[str, str], path: Path, dtype: str) -> Kind:
    """The tag; else the `_probs`/`_mask` name; else floats are probabilities, integers masks."""
    text = tags.get(KIND_TAG, "")
    if text == "probabilities" or (not text and path.stem.endswith("_probs")):
        return "probabilities"
    if text == "mask" or (not text and path.stem.endswith("_mask")):
        return "mask"
    if text:
        raise RasterError(f"{path}: tag {KIND_TAG}={text!r}; expected probabilities or mask.")
    return "probabilities" if np.dtype(dtype).kind == "f" else "mask"


def _is_nodata(raw: np.ndarray, nodata: float | None) -> np.ndarray:
    """Bool array: pixels at the declared nodata value (NaN floats too)."""
    invalid = np.isnan(raw) if raw.dtype.kind == "f" else np.zeros(raw.shape, dtype=bool)
    if nodata is not None and not np.isnan(nodata):
        invalid |= raw == nodata
    return invalid


def _tag_list(text: str | None, where: str) -> list[str] | None:
    if not text:
        return None
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        values = None
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise RasterError(f"{where}: tag {CLASSES_TAG} is not a JSON list of class names.")
    return values


def _check_probabilities(probs: np.ndarray, *, where: str) -> None:
    """Refuse values outside [0, 1]: logits, reflectances or class ids are not probabilities."""
    outside = (probs < 0) | (probs > 1)  # NaN (nodata) compares False
    if outside.any():
        values = probs[outside]
        raise RasterError(
            f"{where}: {int(outside.sum())} value(s) outside [0, 1] (from {float(values.min()):.4g}"
            f" to {float(values.max()):.4g}): not probabilities. Give the probabilities that "
            "predict wrote, or a mask raster."
        )


def _tag_ids(text: str | None, count: int, where: str) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        values = json.loads(text)
    except json.JSONDecodeError:
        values = None
    if (
        not isinstance(values, list)
        or len(values) != count
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    ):
        raise RasterError(f"{where}: tag {CLASS_IDS_TAG} is not a JSON list of {count} class ids.")
    return tuple(values)


def _tag_colours(text: str | None, count: int) -> tuple[Colour, ...] | None:
    """The colours tag, or None when absent or not `count` [r, g, b] lists (colours only
    style the outputs: a broken tag is not worth refusing the raster for)."""
    if not text:
        return None
    try:
        colours = tuple((int(r), int(g), int(b)) for r, g, b in json.loads(text))
    except (TypeError, ValueError):
        return None
    return colours if len(colours) == count else None


@dataclass(frozen=True)
class PredictionInfo:
    """A prediction raster's metadata: enough to read it and to name what it holds."""

    path: Path
    kind: Kind
    class_names: tuple[str, ...]
    class_ids: tuple[int, ...]  # classes file, else the SPECTRASEG_CLASS_IDS tag, else 1..K
    grid: Grid
    head: Head
    tuned_thresholds: tuple[float, ...] | None
    class_band: bool  # one band holding a value per class instead of one band per class
    band_values: tuple[int, ...]  # in a class band: each class's value (0 = none of them)
    class_colours: tuple[Colour, ...] | None = None  # classes file, else the tag


class PredictionRaster:
    """An open prediction raster; `read_rows` gives (probs, mask) for full-width rows."""

    def __init__(self, path: str | os.PathLike[str], *, classes: ClassList | None = None) -> None:
        self.path = Path(path)
        self._dataset = open_dataset(self.path)
        try:
            self.info = self._inspect(classes)
        except BaseException:
            self._dataset.close()
            raise

    def _inspect(self, classes: ClassList | None) -> PredictionInfo:
        dataset, where = self._dataset, str(self.path)
        tags = dict(dataset.tags())
        claimed = KIND_TAG in tags or self.path.stem.endswith(PREDICTION_SUFFIXES)
        if not claimed and classes is None:
            # Any image would otherwise pass: its bands would read as class probabilities.
            raise RasterError(
                f"{where}: not a prediction raster (no {KIND_TAG} tag, no _probs/_mask name). "
                "Give a <stem>_probs.tif or <stem>_mask.tif from predict, or pass "
                "--classes FILE to read this raster's bands as those classes."
            )
        kind = _kind_of(tags, self.path, dataset.dtypes[0])
        names = _tag_list(tags.get(CLASSES_TAG), where)
        descriptions = [d or "" for d in dataset.descriptions]
        class_band = (
            kind == "mask"
            and dataset.count == 1
            and (
                tags.get(HEAD_TAG) == "softmax"
                or (names is not None and len(names) > 1)
                or (classes is not None and len(classes.classes) > 1)
            )
        )
        if names is None and not class_band and all(descriptions):
            names = descriptions
        if names is None and classes is not None:
            names = list(classes.names)
        if names is None:
            raise LabelError(
                f"{where}: {dataset.count} band(s) without class names (no {CLASSES_TAG} tag, "
                "no band descriptions); pass --classes FILE (a classes.yaml)."
            )
        if not class_band and len(names) != dataset.count:
            raise LabelError(
                f"{where}: {dataset.count} bands but {len(names)} class names "
                f"({', '.join(names)}); pass the matching --classes FILE."
            )
        ids = _tag_ids(tags.get(CLASS_IDS_TAG), len(names), where) or tuple(
            range(1, len(names) + 1)
        )
        written_ids = ids  # what predict stores in an id raster, whatever the classes file says
        if classes is not None:
            for name in names:
                if name not in classes.names:
                    raise LabelError(
                        f"{where}: class {name!r} is not in the classes file"
                        f"{did_you_mean(name, classes.names)}."
                    )
            ids = tuple(classes.classes[classes.index_of(name)].id for name in names)
        colours = _tag_colours(tags.get(COLOURS_TAG), len(names))
        if classes is not None:
            colours = tuple(classes.classes[classes.index_of(name)].colour for name in names)
        head_text = tags.get(HEAD_TAG, "softmax" if class_band else "sigmoid")
        head: Head = "softmax" if head_text == "softmax" else "sigmoid"
        tuned = thresholds_from_tag(tags.get(THRESHOLDS_TAG), len(names), where=where)
        return PredictionInfo(
            path=self.path,
            kind=kind,
            class_names=tuple(names),
            class_ids=ids,
            grid=grid_of(dataset),
            head=head,
            tuned_thresholds=tuple(tuned) if tuned is not None else None,
            class_band=class_band,
            # predict wrote class positions 0..K-1 before it tagged id rasters; other id
            # masks hold classes.yaml ids.
            band_values=(
                written_ids
                if tags.get(MASK_VALUES_TAG) == "ids"
                else tuple(range(len(names)))
                if HEAD_TAG in tags
                else ids
            ),
            class_colours=colours,
        )

    @property
    def grid(self) -> Grid:
        return self.info.grid

    def _scale(self) -> float:
        text = self._dataset.tags().get(SCALE_TAG)
        try:
            return float(text) if text else DEFAULT_UINT8_SCALE
        except ValueError:
            raise RasterError(f"{self.path}: tag {SCALE_TAG}={text!r} is not a number.") from None

    def read_rows(self, row_off: int, rows: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(probs (K, rows, W) float32 with NaN nodata, None) or (None, mask (K, rows, W) bool)."""
        window = Window(0, row_off, self.grid.width, rows)
        try:
            raw = self._dataset.read(window=window)
        except RasterioError as error:
            raise self._unreadable(error) from None
        nodata = self._dataset.nodata
        if self.info.kind == "probabilities":
            probs = raw.astype(np.float32)
            invalid = _is_nodata(raw, nodata)
            if raw.dtype.kind in "ui":
                probs /= np.float32(self._scale())
            probs[invalid] = np.nan
            _check_probabilities(probs, where=f"{self.path} (rows {row_off}-{row_off + rows})")
            return probs, None
        valid = ~_is_nodata(raw, nodata)
        if self.info.class_band:
            values = np.asarray(self.info.band_values).reshape(-1, 1, 1)
            return None, np.asarray((raw[0][None] == values) & valid[:1])
        return None, np.asarray((raw != 0) & valid)

    def read_decimated(
        self, height: int, width: int
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
        """`read_rows` of the whole raster at (height, width), nearest neighbour, plus validity.

        GDAL reads only what the smaller grid needs (overviews when the file has them), so a
        preview of a huge raster costs memory for the preview only.
        """
        shape = (self._dataset.count, height, width)
        try:
            raw = self._dataset.read(out_shape=shape, resampling=Resampling.nearest)
            masks = self._dataset.read_masks(out_shape=shape, resampling=Resampling.nearest)
        except RasterioError as error:
            raise self._unreadable(error) from None
        valid = np.all(masks > 0, axis=0)
        nodata = self._dataset.nodata
        if self.info.kind == "probabilities":
            probs = raw.astype(np.float32)
            invalid = _is_nodata(raw, nodata)
            if raw.dtype.kind in "ui":
                probs /= np.float32(self._scale())
            probs[invalid] = np.nan
            return probs, None, valid
        if self.info.class_band:
            values = np.asarray(self.info.band_values).reshape(-1, 1, 1)
            return None, np.asarray((raw[0][None] == values) & valid[None]), valid
        return None, np.asarray((raw != 0) & valid[None]), valid

    def read_valid(self, row_off: int = 0, rows: int | None = None) -> np.ndarray:
        """(rows, W) bool: pixels holding a prediction (not nodata); every row by default."""
        height = self.grid.height - row_off if rows is None else rows
        try:
            masks = self._dataset.read_masks(window=Window(0, row_off, self.grid.width, height))
        except RasterioError as error:
            raise self._unreadable(error) from None
        return np.asarray(np.all(masks > 0, axis=0))

    def _unreadable(self, error: RasterioError) -> RasterError:
        detail = str(error).split("\n")[0]
        return RasterError(
            f"{self.path}: cannot read pixels; the file may be truncated or corrupt ({detail})."
        )

    def close(self) -> None:
        self._dataset.close()

    def __enter__(self) -> PredictionRaster:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
