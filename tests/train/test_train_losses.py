"""Each loss term: known values, ignored pixels, perfect predictions, weights; and overfitting."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as functional

from spectraseg.errors import ConfigError
from spectraseg.models.unet import UNet
from spectraseg.train.losses import LOSS_TERMS, LossSettings, build_loss

SIGMOID_TERMS = [term for term in LOSS_TERMS if term != "cross_entropy"]
SOFTMAX_TERMS = [term for term in LOSS_TERMS if term != "bce"]


def loss_of(term: str, head: str = "sigmoid", **settings: Any) -> Any:
    return build_loss(LossSettings(terms={term: 1.0}, **settings), head)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random logits, a one-hot target (valid for either head) and an ignored band of columns."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=generator)
    labels = torch.randint(0, 3, (2, 8, 8), generator=generator)
    target = functional.one_hot(labels, 3).permute(0, 3, 1, 2).float()
    ignore = torch.zeros(2, 8, 8, dtype=torch.bool)
    ignore[:, :, 5:] = True
    return logits, target, ignore


def perfect_logits(target: torch.Tensor) -> torch.Tensor:
    return torch.where(target > 0.5, 30.0, -30.0)


@pytest.mark.parametrize(
    ("term", "head"),
    [(term, "sigmoid") for term in SIGMOID_TERMS] + [(term, "softmax") for term in SOFTMAX_TERMS],
)
def test_ignored_pixels_do_not_change_the_loss(
    term: str, head: str, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> None:
    logits, target, ignore = batch
    loss = loss_of(term, head)
    scrambled_logits = torch.where(ignore[:, None], torch.tensor(float("nan")), logits)
    scrambled_target = torch.where(ignore[:, None], 1.0 - target, target)
    expected = loss(logits, target, ignore)
    assert torch.isfinite(expected)
    torch.testing.assert_close(loss(scrambled_logits, scrambled_target, ignore), expected)
    # ...and equal the loss over the valid pixels alone.
    cropped = loss(logits[..., :5].contiguous(), target[..., :5].contiguous())
    torch.testing.assert_close(cropped, expected)


@pytest.mark.parametrize(
    ("term", "head"),
    [(term, "sigmoid") for term in SIGMOID_TERMS] + [(term, "softmax") for term in SOFTMAX_TERMS],
)
def test_a_perfect_prediction_costs_nearly_nothing(
    term: str, head: str, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> None:
    _, target, ignore = batch
    assert loss_of(term, head)(perfect_logits(target), target, ignore).item() == pytest.approx(
        0.0, abs=1e-6
    )
    assert loss_of(term, head)(-perfect_logits(target), target, ignore).item() > 0.3


@pytest.mark.parametrize("term", [*LOSS_TERMS])
def test_ignored_pixels_get_no_gradient(
    term: str, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> None:
    logits, target, ignore = batch
    logits.requires_grad_(True)
    head = "softmax" if term == "cross_entropy" else "sigmoid"
    loss_of(term, head)(logits, target, ignore).backward()
    assert logits.grad is not None
    assert torch.all(logits.grad[ignore[:, None].expand_as(logits)] == 0)
    assert logits.grad.abs().sum() > 0


def test_bce_and_cross_entropy_match_torch(
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    logits, target, _ = batch
    torch.testing.assert_close(
        loss_of("bce")(logits, target), functional.binary_cross_entropy_with_logits(logits, target)
    )
    torch.testing.assert_close(
        loss_of("cross_entropy", "softmax")(logits, target),
        functional.cross_entropy(logits, target.argmax(dim=1)),
    )


def test_soft_jaccard_and_dice_by_hand() -> None:
    # One class, probabilities [1, 0.5, 0] against truth [1, 1, 0]: intersection 1.5, sum 3.5.
    logits = torch.tensor([[[[30.0, 0.0, -30.0]]]])
    target = torch.tensor([[[[1.0, 1.0, 0.0]]]])
    jaccard = (1.5 + 1) / (3.5 - 1.5 + 1)
    dice = (3.0 + 1) / (3.5 + 1)
    assert loss_of("jaccard")(logits, target).item() == pytest.approx(1 - jaccard)
    assert loss_of("log_jaccard")(logits, target).item() == pytest.approx(
        -torch.log(torch.tensor(jaccard)).item()
    )
    assert loss_of("dice")(logits, target).item() == pytest.approx(1 - dice)


def test_focal_with_gamma_zero_is_bce_and_down_weights_easy_pixels(
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    logits, target, ignore = batch
    bce = loss_of("bce")(logits, target, ignore)
    torch.testing.assert_close(loss_of("focal", focal_gamma=0.0)(logits, target, ignore), bce)
    assert loss_of("focal")(logits, target, ignore) < bce


def test_class_weights_select_classes(
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    logits, target, ignore = batch
    for term in ("bce", "jaccard", "focal"):
        only_first = loss_of(term, class_weights=(1.0, 0.0, 0.0))(logits, target, ignore)
        first_alone = loss_of(term)(logits[:, :1], target[:, :1], ignore[:, :])
        torch.testing.assert_close(only_first, first_alone)
    with pytest.raises(ConfigError, match="2 values but the model has 3 classes"):
        loss_of("bce", class_weights=(1.0, 2.0))(logits, target, ignore)


def test_the_default_is_bce_minus_log_jaccard(
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    logits, target, ignore = batch
    loss = build_loss(LossSettings())
    parts = loss.components(logits, target, ignore)
    assert set(parts) == {"bce", "log_jaccard"}
    torch.testing.assert_close(loss(logits, target, ignore), parts["bce"] + parts["log_jaccard"])
    weighted = build_loss(LossSettings(terms={"bce": 0.5, "dice": 2.0}))
    parts = weighted.components(logits, target, ignore)
    torch.testing.assert_close(
        weighted(logits, target, ignore), 0.5 * parts["bce"] + 2.0 * parts["dice"]
    )


def test_an_all_ignored_batch_costs_zero(
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> None:
    logits, target, _ = batch
    everything = torch.ones(2, 8, 8, dtype=torch.bool)
    assert build_loss(LossSettings())(logits, target, everything).item() == pytest.approx(0.0)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="did you mean 'dice'"):
        LossSettings(terms={"dise": 1.0})
    with pytest.raises(ValueError, match="at least one"):
        LossSettings(terms={})
    with pytest.raises(ValueError, match=">= 0"):
        LossSettings(terms={"bce": -1.0})
    with pytest.raises(ConfigError, match="use 'cross_entropy'"):
        build_loss(LossSettings(terms={"bce": 1.0}), head="softmax")
    with pytest.raises(ConfigError, match="use 'bce'"):
        build_loss(LossSettings(terms={"cross_entropy": 1.0}), head="sigmoid")


def test_a_tiny_unet_overfits_a_tiny_batch() -> None:
    torch.manual_seed(0)
    model = UNet(4, 2, depth=3, base_filters=8)
    image = torch.randn(2, 4, 32, 32)
    target = torch.zeros(2, 2, 32, 32)
    target[:, 0, 4:14, 6:20] = 1
    target[:, 1, 18:28, 10:26] = 1
    target[1, 1, 2:8, 2:8] = 1
    loss = build_loss(LossSettings())
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    losses: list[float] = []
    # About 20 steps suffice; stopping as soon as the loss has fallen keeps the test short.
    for _ in range(50):
        optimizer.zero_grad()
        value = loss(model(image), target)
        value.backward()
        optimizer.step()
        losses.append(value.item())
        if losses[-1] < 0.1 * losses[0]:
            break
    assert losses[-1] < 0.1 * losses[0], losses
