"""Valid-region training: the model sees the whole patch, the loss counts only its centre.

The DSTL 3rd place fed 112 px and scored 80 px. Labels at the border are then context the loss
never reads: perturbing them changes no gradient, perturbing the centre does.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from spectraseg.config import load_config
from spectraseg.errors import ConfigError
from spectraseg.models.unet import UNet
from spectraseg.predict.load_model import facts_from_card
from spectraseg.sample import generate_sample
from spectraseg.train.checkpoint import load_checkpoint
from spectraseg.train.loop import train_one_epoch
from spectraseg.train.losses import LossSettings, build_loss
from spectraseg.workflow.training import train_model

CROP = 4


def gradients(model: UNet, image: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """The gradients of one valid-region training step on a copy of `model`."""
    model = copy.deepcopy(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    ignore = torch.zeros(mask.shape[0], *mask.shape[2:], dtype=torch.bool)
    train_one_epoch(
        model,
        [(image, mask, ignore)],
        optimizer,
        build_loss(LossSettings(), "sigmoid"),
        device=torch.device("cpu"),
        learning_rate=lambda step: 0.0,
        crop_px=CROP,
    )
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.fixture
def step() -> tuple[UNet, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = UNet(3, 2, depth=3, base_filters=4, batch_norm=False)
    image = torch.randn(2, 3, 24, 24)
    mask = (torch.rand(2, 2, 24, 24) > 0.5).float()
    return model, image, mask


def test_perturbing_only_the_border_labels_changes_no_gradient(step) -> None:
    model, image, mask = step
    perturbed = mask.clone()
    perturbed[..., :CROP, :] = 1 - perturbed[..., :CROP, :]
    perturbed[..., :, -CROP:] = 1 - perturbed[..., :, -CROP:]
    pairs = zip(gradients(model, image, mask), gradients(model, image, perturbed), strict=True)
    assert all(torch.equal(before, after) for before, after in pairs)


def test_perturbing_the_centre_labels_changes_the_gradient(step) -> None:
    model, image, mask = step
    perturbed = mask.clone()
    perturbed[..., CROP, CROP] = 1 - perturbed[..., CROP, CROP]
    pairs = zip(gradients(model, image, mask), gradients(model, image, perturbed), strict=True)
    assert any(not torch.equal(before, after) for before, after in pairs)


def test_a_crop_that_leaves_nothing_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"train\.centre_crop_px=16 leaves nothing of a 32 px"):
        load_config(None, ["data.patch_size=32", "train.centre_crop_px=16"])


@pytest.mark.slow
def test_the_crop_is_recorded_so_prediction_crops_the_same_way(tmp_path: Path) -> None:
    sample = generate_sample(tmp_path / "data", scenes=3, size=64, seed=5)
    config = load_config(
        None,
        [
            "model.unet.depth=3", "model.unet.base_filters=4", "data.patch_size=32",
            "train.patches_per_epoch=4", "train.batch_size=4", "train.num_workers=0",
            "train.threads=1", "train.epochs=1", f"train.centre_crop_px={CROP}",
        ],
    )  # fmt: skip
    train_model(config, data_dir=sample, out_dir=tmp_path / "run")
    card = load_checkpoint(tmp_path / "run" / "best.pt").card
    assert card.centre_crop_px == CROP
    assert facts_from_card(card).centre_crop_px == CROP
