"""Segmentation losses by name, combined with weights from config; ignored pixels never count.

The default is the DSTL 3rd-place objective BCE - log(soft Jaccard): the pixel-wise term gives
smooth, well-scaled gradients everywhere, while the Jaccard term optimizes the competition metric
directly and does not let a rare class drown in background pixels.

Set-based terms (jaccard, log_jaccard, dice) pool intersection and union over the whole batch
per class, then average classes; pixel-wise terms (bce, focal, cross_entropy) average over valid
pixels. Class weights scale each class's share in both (normalized to mean 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as functional
from pydantic import Field, field_validator

from spectraseg.errors import ConfigError, did_you_mean
from spectraseg.models.head import HEADS, Head
from spectraseg.settings import Settings

__all__ = ["LOSS_TERMS", "LossSettings", "SegmentationLoss", "build_loss"]

LOSS_TERMS: tuple[str, ...] = ("bce", "jaccard", "log_jaccard", "dice", "focal", "cross_entropy")
_HEAD_OF_TERM = {"bce": "sigmoid", "cross_entropy": "softmax"}
_SET_TERMS = ("jaccard", "log_jaccard", "dice")


class LossSettings(Settings):
    """The training objective: a weighted sum of named terms."""

    terms: dict[str, float] = Field(default_factory=lambda: {"bce": 1.0, "log_jaccard": 1.0})
    """Term name -> weight. Names: bce, jaccard (1 - soft Jaccard), log_jaccard
    (-log soft Jaccard), dice (1 - soft Dice), focal, cross_entropy (softmax head only)."""
    class_weights: tuple[float, ...] | None = None
    """Relative weight of each class (one per class); None weighs all classes equally."""
    focal_gamma: float = Field(default=2.0, ge=0.0)
    """Focal loss exponent: 0 is BCE; larger values down-weight pixels already right."""
    smooth: float = Field(default=1.0, gt=0.0)
    """Added to numerator and denominator of soft Jaccard and Dice, so a class absent from a batch
    and not predicted scores 1 instead of 0/0."""

    @field_validator("terms")
    @classmethod
    def _known_terms(cls, terms: dict[str, float]) -> dict[str, float]:
        if not terms:
            raise ValueError(f"needs at least one term; known: {', '.join(LOSS_TERMS)}")
        for name, weight in terms.items():
            if name not in LOSS_TERMS:
                raise ValueError(f"unknown loss term {name!r}{did_you_mean(name, LOSS_TERMS)}")
            if not math.isfinite(weight) or weight < 0:
                raise ValueError(f"weight of {name!r} must be finite and >= 0, got {weight}")
        if not any(terms.values()):
            raise ValueError("all term weights are 0; give at least one a positive weight")
        return terms

    @field_validator("class_weights")
    @classmethod
    def _usable_class_weights(cls, weights: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if weights is not None and (
            not weights
            or min(weights) < 0
            or not all(map(math.isfinite, weights))
            or not any(weights)
        ):
            raise ValueError(f"must be finite, >= 0 and not all 0, got {list(weights)}")
        return weights


class SegmentationLoss:
    """loss(logits (N, K, H, W), target (N, K, H, W) 0/1, ignore (N, H, W) bool | None) -> scalar.

    Ignored pixels are replaced by neutral values before any term is computed, so they add
    nothing to the loss and receive exactly zero gradient, even when their logits are not finite.
    """

    def __init__(self, settings: LossSettings, head: Head = "sigmoid") -> None:
        if head not in HEADS:
            raise ConfigError(f"unknown head {head!r}; known: sigmoid, softmax")
        for name in settings.terms:
            needed = _HEAD_OF_TERM.get(name)
            if needed is not None and needed != head:
                other = "cross_entropy" if name == "bce" else "bce"
                raise ConfigError(
                    f"loss term {name!r} needs a {needed} head but the model has a {head} head; "
                    f"use {other!r} instead"
                )
        self.settings = settings
        self.head = head

    def __call__(
        self, logits: torch.Tensor, target: torch.Tensor, ignore: torch.Tensor | None = None
    ) -> torch.Tensor:
        parts = self.components(logits, target, ignore)
        total = logits.new_zeros((), dtype=torch.float32)
        for name, weight in self.settings.terms.items():
            if weight:
                total = total + weight * parts[name]
        return total

    def components(
        self, logits: torch.Tensor, target: torch.Tensor, ignore: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Each configured term's unweighted value, for logging the parts of the objective."""
        if logits.shape != target.shape or logits.ndim != 4:
            raise ValueError(
                f"logits {tuple(logits.shape)} and target {tuple(target.shape)} "
                "must both be (N, K, H, W)"
            )
        # Losses in float32 even under autocast: log and exp of half floats lose the small terms.
        logits = logits.float()
        target = target.float()
        valid: torch.Tensor | None = None
        if ignore is not None:
            valid = ~ignore.bool().unsqueeze(1)
            logits = torch.where(valid, logits, torch.zeros_like(logits))
            target = torch.where(valid, target, torch.zeros_like(target))
        weights = self._class_weights(logits.shape[1], logits.device)
        parts: dict[str, torch.Tensor] = {}
        if any(name in self.settings.terms for name in _SET_TERMS):
            jaccard, dice = _soft_scores(
                self._probabilities(logits), target, valid, self.settings.smooth
            )
            parts["jaccard"] = 1.0 - _class_mean(jaccard, weights)
            parts["log_jaccard"] = -torch.log(_class_mean(jaccard, weights))
            parts["dice"] = 1.0 - _class_mean(dice, weights)
        for name in self.settings.terms:
            if name == "bce":
                per_element = functional.binary_cross_entropy_with_logits(
                    logits, target, reduction="none"
                )
                parts[name] = _pixel_mean(per_element, valid, weights)
            elif name == "focal":
                parts[name] = self._focal(logits, target, valid, weights)
            elif name == "cross_entropy":
                log_probs = functional.log_softmax(logits, dim=1)
                parts[name] = _pixel_mean(-target * log_probs, valid, weights, summed_classes=True)
        return {name: parts[name] for name in self.settings.terms}

    def _probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        if self.head == "softmax":
            return torch.softmax(logits, dim=1)
        return torch.sigmoid(logits)

    def _focal(
        self,
        logits: torch.Tensor,
        target: torch.Tensor,
        valid: torch.Tensor | None,
        weights: torch.Tensor | None,
    ) -> torch.Tensor:
        """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_true)^gamma."""
        gamma = self.settings.focal_gamma
        if self.head == "softmax":
            log_probs = functional.log_softmax(logits, dim=1)
            per_element = -target * (1.0 - log_probs.exp()).pow(gamma) * log_probs
            return _pixel_mean(per_element, valid, weights, summed_classes=True)
        # For a 0/1 target, BCE = -log(p_true), so p_true = exp(-BCE) without a separate sigmoid.
        bce = functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
        per_element = (1.0 - torch.exp(-bce)).pow(gamma) * bce
        return _pixel_mean(per_element, valid, weights)

    def _class_weights(self, num_classes: int, device: torch.device) -> torch.Tensor | None:
        configured = self.settings.class_weights
        if configured is None:
            return None
        if len(configured) != num_classes:
            raise ConfigError(
                f"loss.class_weights has {len(configured)} values but the model has "
                f"{num_classes} classes; give one weight per class"
            )
        weights = torch.tensor(configured, dtype=torch.float32, device=device)
        return weights * (num_classes / weights.sum())


def build_loss(settings: LossSettings, head: Head = "sigmoid") -> SegmentationLoss:
    """The configured objective for a model with the given head ("sigmoid" or "softmax")."""
    return SegmentationLoss(settings, head)


def _soft_scores(
    probs: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None, smooth: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(K,) soft Jaccard and soft Dice, pooled over the batch and all valid pixels."""
    if valid is not None:
        probs = probs * valid
    axes = (0, 2, 3)
    intersection = (probs * target).sum(dim=axes)
    total = probs.sum(dim=axes) + target.sum(dim=axes)
    jaccard = (intersection + smooth) / (total - intersection + smooth)
    dice = (2.0 * intersection + smooth) / (total + smooth)
    return jaccard, dice


def _class_mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum()


def _pixel_mean(
    per_element: torch.Tensor,
    valid: torch.Tensor | None,
    weights: torch.Tensor | None,
    *,
    summed_classes: bool = False,
) -> torch.Tensor:
    """Mean over valid pixels (and over classes unless the term sums them per pixel)."""
    if weights is not None:
        per_element = per_element * weights.view(1, -1, 1, 1)
    if valid is not None:
        per_element = per_element * valid
    classes = 1 if summed_classes else per_element.shape[1]
    if valid is None:
        count = per_element.shape[0] * per_element.shape[2] * per_element.shape[3]
        return per_element.sum() / (count * classes)
    return per_element.sum() / (valid.sum() * classes).clamp(min=1)
