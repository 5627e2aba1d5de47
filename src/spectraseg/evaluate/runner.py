"""`evaluate_paths`: predicted rasters against truth files, scene by scene, into an `Evaluation`.

A scene is scored one band of rows at a time (`strip_rows`: about 256 MB of prediction, truth
and masks), so memory does not grow with the scene; object scores need whole objects and read
the scene in one band.
A probability raster becomes a mask the way `predict` makes masks: the tuned thresholds of its
SPECTRASEG_THRESHOLDS tag (or of the run's checkpoint, or 0.5) for multi-label models, the
most probable class for multi-class ones. Pixels where the prediction is nodata are ignored,
as are the truth's unlabelled pixels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from spectraseg.classes import ClassList, ClassSpec
from spectraseg.data.rasterize import rasterize_geometries
from spectraseg.data.split import HeldOutArea
from spectraseg.errors import DataError, LabelError
from spectraseg.evaluate.matching import (
    ScenePair,
    TruthSource,
    class_positions,
    classes_from_names,
    find_classes_file,
    pair_scenes,
    with_truth_values,
)
from spectraseg.evaluate.scores import Evaluation, SceneScores, merge_bands, score_scene
from spectraseg.io.classes_file import load_classes
from spectraseg.io.labels import VectorLabels, is_vector_file, read_area, read_vector_labels
from spectraseg.io.prediction_raster import PredictionRaster
from spectraseg.postprocess.chain import (
    PostprocessSettings,
    postprocess_window,
    resolve_postprocess,
)
from spectraseg.postprocess.morphology import MorphologySettings
from spectraseg.postprocess.vectorize import BACKGROUND_NAMES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationInputs:
    """Where the scores came from, for scores.json."""

    prediction: str
    truth: str
    classes_file: str | None
    run: str | None
    class_column: str = "class"
    """The vector truth's class attribute (`--class-column`), so the report reads it alike."""

    def as_dict(self) -> dict[str, str | None]:
        return {
            "prediction": self.prediction,
            "truth": self.truth,
            "classes_file": self.classes_file,
            "run": self.run,
            "class_column": self.class_column,
        }


# Scoring probabilities without post-processing settings: the masks `predict` would write.
THRESHOLDS_ONLY = PostprocessSettings(morphology={"all": MorphologySettings()})


def _run_hints(run: Path | None) -> tuple[ClassList | None, tuple[float, ...] | None]:
    """Classes (names and ids) and tuned thresholds from a model card (a checkpoint, run folder
    or ensemble), if given."""
    if run is None:
        return None, None
    from spectraseg.predict.load_model import load_card  # torch: only when asked for

    card = load_card(run)
    classes = ClassList(
        classes=tuple(ClassSpec(name=c.name, id=c.id, colour=c.colour) for c in card.classes)
    )
    return classes, tuple(card.thresholds)


class _PredictedRows:
    """A prediction raster's masks, a band of rows at a time, as `predict` or the
    post-processing settings make them: a probability raster is thresholded (and cleaned) with
    a halo of rows around the band, so every band equals the same rows of the whole scene."""

    def __init__(
        self,
        raster: PredictionRaster,
        tuned: tuple[float, ...] | None,
        settings: PostprocessSettings | None = None,
    ) -> None:
        info = raster.info
        self._raster = raster
        thresholds = info.tuned_thresholds or (
            tuned if tuned and len(tuned) == len(info.class_names) else None
        )
        self._plan = resolve_postprocess(
            settings or THRESHOLDS_ONLY,
            info.class_names,
            info.grid if settings is not None else None,
            tuned_thresholds=thresholds,
            head=info.head,
        )

    def read(self, row_off: int, rows: int) -> np.ndarray:
        """(K, rows, W) bool."""
        height = self._raster.info.grid.height
        halo = self._plan.halo_px
        start, stop = max(0, row_off - halo), min(height, row_off + rows + halo)
        probs, mask = self._raster.read_rows(start, stop - start)
        if mask is None:
            mask = postprocess_window(self._plan, probs=probs)
        return mask[:, row_off - start : row_off - start + rows]


STRIP_BYTES = 256 * 2**20
"""Memory for one band of rows of a scene being scored: its prediction, truth and masks."""


def strip_rows(width: int, num_classes: int, *, budget: int = STRIP_BYTES) -> int:
    """Rows per band: float probabilities, bool prediction and truth per class, and the
    ignore masks of a row fit `budget` bytes (at least 256 rows, so the post-processing halo
    read around each band stays a small share of it).

    Example:
        >>> strip_rows(5_000, 8), strip_rows(20_000, 8)
        (958, 256)
    """
    return max(256, budget // (width * (num_classes * 6 + 8)))


def _held_out_pairs(
    pairs: list[ScenePair],
    held_out: Mapping[str, tuple[tuple[int, int], HeldOutArea]],
    source: str,
) -> list[ScenePair]:
    """The pairs whose scene has a held-out area; the others are logged and left out.

    One prediction and a run of one scene pair whatever their names (a scene folder predicted
    as `IMG_DATA_probs.tif`); the sizes are still checked.
    """
    if len(pairs) == 1 and len(held_out) == 1 and pairs[0].name not in held_out:
        ((name, _),) = held_out.items()
        log.info("%s: the run's one scene, %s", pairs[0].prediction.name, name)
        return [replace(pairs[0], name=name)]
    kept = [pair for pair in pairs if pair.name in held_out]
    for pair in pairs:
        if pair.name not in held_out:
            log.info("%s: not held out in %s (trained on whole): not scored", pair.name, source)
    if not kept:
        raise DataError(
            f"{source}: none of the predicted scenes ({', '.join(p.name for p in pairs)}) has a "
            f"held-out area; it holds out {', '.join(sorted(held_out)) or 'nothing'}."
        )
    return kept


def evaluate_paths(
    prediction: str | os.PathLike[str],
    truth: str | os.PathLike[str],
    *,
    classes_file: str | os.PathLike[str] | None = None,
    class_column: str = "class",
    run: str | os.PathLike[str] | None = None,
    objects: bool = False,
    postprocess: PostprocessSettings | None = None,
    held_out: Mapping[str, tuple[tuple[int, int], HeldOutArea]] | None = None,
    split_source: str | None = None,
    area: str | os.PathLike[str] | None = None,
) -> tuple[Evaluation, EvaluationInputs]:
    """Score every predicted scene that has a truth; see the package notes for the rules.

    Args:
        postprocess: score the probabilities after these thresholds, morphology and rules (what
            `vectorize` with the same settings draws) instead of `predict`'s own mask.
        held_out: scene name -> ((H, W), area): score only inside each scene's held-out area
            (a run folder's split, `data.split.held_out_from_record`); other scenes are left
            out. `split_source` names where it came from, for messages.
        area: a vector file: score only pixels inside its polygons (any attributes).
    """
    pairs = pair_scenes(prediction, truth, prefer_mask=postprocess is None)
    if held_out is not None:
        pairs = _held_out_pairs(pairs, held_out, split_source or "the split")
    area_labels = read_area(area) if area is not None else None
    run_classes, tuned = _run_hints(Path(run) if run is not None else None)
    found = Path(classes_file) if classes_file is not None else find_classes_file(truth)
    truth_classes = load_classes(found) if found is not None else None
    if found is not None:
        log.info("classes from %s", found)
    prediction_classes = truth_classes if classes_file is not None else run_classes
    shared: dict[Path, VectorLabels] = {}
    scenes: list[SceneScores] = []
    evaluated: tuple[str, ...] | None = None
    any_shared_hit = False
    for pair in pairs:
        scene, names = _score_pair(
            pair,
            prediction_classes,
            truth_classes,
            tuned,
            column=class_column,
            objects=objects,
            shared=shared,
            postprocess=postprocess,
            held_out=held_out[pair.name] if held_out is not None else None,
            split_source=split_source,
            area=area_labels,
        )
        if evaluated is not None and names != evaluated:
            raise LabelError(
                f"{pair.prediction}: classes {', '.join(names)} differ from the other scenes' "
                f"({', '.join(evaluated)}); evaluate them separately."
            )
        evaluated = names
        any_shared_hit |= bool(scene.counts.true_positive.sum() + scene.counts.false_negative.sum())
        scenes.append(scene)
    shared_source = next((p.truth for p in pairs if p.shared), None)
    if shared_source is not None and not any_shared_hit:
        labels = shared[shared_source]
        if not labels.is_empty:
            raise LabelError(
                f"{shared_source}: none of its polygons falls on any predicted scene; check "
                "that they show the same place and their CRS."
            )
    assert evaluated is not None
    inputs = EvaluationInputs(
        prediction=str(prediction),
        truth=str(truth),
        classes_file=str(found) if found is not None else None,
        run=str(run) if run is not None else None,
        class_column=class_column,
    )
    return Evaluation(evaluated, tuple(scenes)), inputs


def _score_pair(
    pair: ScenePair,
    prediction_classes: ClassList | None,
    truth_classes: ClassList | None,
    tuned: tuple[float, ...] | None,
    *,
    column: str,
    objects: bool,
    shared: dict[Path, VectorLabels],
    postprocess: PostprocessSettings | None,
    held_out: tuple[tuple[int, int], HeldOutArea] | None = None,
    split_source: str | None = None,
    area: VectorLabels | None = None,
) -> tuple[SceneScores, tuple[str, ...]]:
    """One scene's counts, band of rows by band (objects need the whole scene in one band)."""
    with PredictionRaster(pair.prediction, classes=prediction_classes) as raster:
        info = raster.info
        keep = [k for k, n in enumerate(info.class_names) if n.lower() not in BACKGROUND_NAMES]
        names = tuple(info.class_names[k] for k in keep)
        classes = truth_classes or with_truth_values(classes_from_names(names), pair.truth, column)
        positions = class_positions(names, classes, where=str(pair.truth))
        vectors = None
        if pair.shared and is_vector_file(pair.truth):
            if pair.truth not in shared:
                shared[pair.truth] = read_vector_labels(
                    pair.truth, classes, column=column, column_hint="Pass --class-column NAME."
                )
            vectors = shared[pair.truth]
        truth = TruthSource(pair.truth, info.grid, classes, column=column, vectors=vectors)
        if held_out is not None and held_out[0] != info.grid.shape:
            shape = held_out[0]
            raise DataError(
                f"{pair.prediction}: {info.grid.shape[0]} x {info.grid.shape[1]} pixels, but "
                f"{split_source} recorded scene {pair.name!r} as {shape[0]} x {shape[1]}; "
                "predict the training scene itself to score its held-out area."
            )
        placed_area = area.on_grid(info.grid, scene=pair.name) if area is not None else None
        predicted = _PredictedRows(raster, tuned, postprocess)
        height, width = info.grid.shape
        rows = height if objects else strip_rows(width, len(info.class_names))
        multiclass = info.class_band or info.head == "softmax"
        bands: list[SceneScores] = []
        for row_off in range(0, height, rows):
            count = min(rows, height - row_off)
            truth_mask, ignore = truth.read_rows(row_off, count)
            ignore |= ~raster.read_valid(row_off, count)
            if held_out is not None:
                ignore |= ~held_out[1].mask(info.grid.shape, (row_off, row_off + count))
            if placed_area is not None:
                band = info.grid.window(Window(0, row_off, width, count))
                ignore |= ~rasterize_geometries(placed_area.geometries, band)
            bands.append(
                score_scene(
                    pair.name,
                    predicted.read(row_off, count)[keep],
                    truth_mask[positions],
                    ignore,
                    objects=objects,
                    multiclass=multiclass,
                )
            )
    log.info("%s: %s against %s", pair.name, pair.prediction.name, pair.truth.name)
    return merge_bands(pair.name, bands), names
