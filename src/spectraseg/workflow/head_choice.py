"""The network's head when the config leaves it open: chosen from the training labels.

A softmax head (cross-entropy over the classes) suits labels that are a partition: no pixel in
two classes and every labelled pixel in one, as with a few polygons of land cover where only
the polygons are labelled (`data.labels.labelled_area`). Independent sigmoids there waste
capacity on combinations that never occur, and their thresholds are tuned on validation pixels
that say nothing about the other classes. Where classes overlap a softmax cannot say so, and
where labelled pixels are in no class (a background) a softmax over the classes has no output
for them, so those keep the multi-label sigmoid head. `model.head` (or the model section's
`head`) set by the user always wins; the choice is logged either way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from spectraseg.config import Config
from spectraseg.data.lazy_scene import LazyScene
from spectraseg.data.scene import Scene
from spectraseg.models.head import Head
from spectraseg.train.losses import LossSettings

__all__ = ["LabelLayout", "choose_head", "label_layout"]

log = logging.getLogger(__name__)

# Rows of a streamed scene's labels read at a time: a few MB of masks for a wide scene.
_STRIP_ROWS = 256


@dataclass(frozen=True)
class LabelLayout:
    """How the labelled pixels of a set of scenes fall into classes.

    Attributes:
        labelled: pixels the labels do not ignore (nodata plays no part: this is about the
            labels, and a streamed scene is counted without reading its pixels).
        overlapping: labelled pixels in two classes or more.
        unclassed: labelled pixels in no class (background).
    """

    num_classes: int
    labelled: int
    overlapping: int
    unclassed: int

    @property
    def exclusive(self) -> bool:
        """Whether the labels are a partition a softmax over the classes can learn."""
        return (
            self.num_classes >= 2
            and self.labelled > 0
            and self.overlapping == 0
            and self.unclassed == 0
        )


def label_layout(scenes: Sequence[Scene | LazyScene]) -> LabelLayout:
    """Count labelled, overlapping and unclassed pixels over every labelled scene.

    Example:
        >>> from affine import Affine
        >>> from spectraseg.grid import Grid
        >>> mask = np.array([[[1, 0, 0]], [[0, 1, 0]]], dtype=bool)
        >>> scene = Scene("a", np.zeros((1, 1, 3), np.float32), np.ones((1, 3), bool), ("red",),
        ...               Grid(None, Affine.identity(), 3, 1), mask, np.array([[0, 0, 1]], bool))
        >>> label_layout([scene]).exclusive
        True
    """
    labelled = overlapping = unclassed = 0
    num_classes = 0
    for scene in scenes:
        for mask, ignore in _labels(scene):
            num_classes = int(mask.shape[0])
            usable = ~ignore
            # uint16 counts: a quarter of int64's memory, enough for any class list.
            per_pixel = mask.sum(axis=0, dtype=np.uint16)
            labelled += int(np.count_nonzero(usable))
            overlapping += int(np.count_nonzero(usable & (per_pixel > 1)))
            unclassed += int(np.count_nonzero(usable & (per_pixel == 0)))
    return LabelLayout(num_classes, labelled, overlapping, unclassed)


def _labels(scene: Scene | LazyScene) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(mask, ignore) of a scene: whole when in memory, strip by strip when streamed."""
    if isinstance(scene, LazyScene):
        height, width = scene.shape
        for top in range(0, height, _STRIP_ROWS):
            yield scene.labels.read(Window(0, top, width, min(_STRIP_ROWS, height - top)))
    elif scene.mask is not None:
        ignore = scene.ignore if scene.ignore is not None else np.zeros(scene.shape, dtype=bool)
        yield scene.mask, ignore


def choose_head(config: Config, scenes: Sequence[Scene | LazyScene]) -> Config:
    """`config` with `model.head` settled: as configured, else chosen from `scenes`' labels.

    A softmax head, configured or chosen, turns the default loss's bce term into cross_entropy
    (bce needs a sigmoid head). A loss whose terms the user changed is left alone, so a chosen
    head stays sigmoid when those terms keep bce.
    """
    configured = config.model.network_head()
    if configured is not None:
        log.info("head: %s, as configured", configured)
        return _with_head(config, configured, config.loss)
    layout = label_layout(scenes)
    head: Head = "sigmoid"
    loss = config.loss
    if layout.num_classes < 2:
        reason = "one class: multi-label head (sigmoid)"
    elif layout.overlapping:
        share = layout.overlapping / max(1, layout.labelled)
        reason = (
            f"{layout.overlapping} labelled pixels ({share:.2%}) are in two classes or more: "
            "multi-label head (sigmoid)"
        )
    elif layout.unclassed:
        share = layout.unclassed / max(1, layout.labelled)
        reason = (
            f"labels never overlap, but {share:.1%} of the labelled pixels are in no class "
            "(background), which a softmax over the classes cannot predict: multi-label head "
            "(sigmoid)"
        )
    elif "bce" in loss.terms and loss.terms != LossSettings().terms:
        reason = (
            "labels never overlap, but loss.terms has bce, which needs a sigmoid head: "
            "multi-label head (sigmoid); use cross_entropy instead for the exclusive head"
        )
    else:
        head = "softmax"
        terms = _loss_for(head, loss).terms
        reason = (
            "labels never overlap and every labelled pixel has a class: exclusive head "
            f"(softmax; loss {' + '.join(terms)})"
        )
    log.info("head: %s. Set model.head to choose another.", reason)
    return _with_head(config, head, loss)


def _loss_for(head: Head, loss: LossSettings) -> LossSettings:
    """The default loss with cross_entropy for bce under a softmax head; any other as it is."""
    if head != "softmax" or loss.terms != LossSettings().terms:
        return loss
    terms = {("cross_entropy" if name == "bce" else name): w for name, w in loss.terms.items()}
    return loss.model_copy(update={"terms": terms})


def _with_head(config: Config, head: Head, loss: LossSettings) -> Config:
    model = config.model.model_copy(update={"head": head})
    return config.model_copy(update={"model": model, "loss": _loss_for(head, loss)})
