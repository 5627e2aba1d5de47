"""Every network the registry knows trains into a run folder whose card predicts and resumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectraseg.config import load_config
from spectraseg.models.pretrained import adapt_first_convolution
from spectraseg.predict.load_model import load_model
from spectraseg.train.checkpoint import load_checkpoint
from spectraseg.workflow.training import train_model

from .conftest import TINY_TRAINING

pytestmark = pytest.mark.slow

COMMON = [*TINY_TRAINING, "train.patches_per_epoch=8", "train.epochs=1"]
DENSENET = [
    "model.name=fc-densenet",
    "model.fc_densenet.down_blocks=[1, 2]",
    "model.fc_densenet.bottleneck_layers=2",
    "model.fc_densenet.growth_rate=3",
    "model.fc_densenet.first_filters=4",
]


def test_an_fc_densenet_run_records_its_architecture_and_predicts(sample, tmp_path) -> None:
    config = load_config(None, [*COMMON, *DENSENET])
    train_model(config, data_dir=sample, out_dir=tmp_path / "run")
    card = load_checkpoint(tmp_path / "run" / "best.pt").card
    assert card.model == "fc-densenet"
    assert card.model_settings["down_blocks"] == [1, 2]
    assert card.size_multiple == 4 and card.patch_px == 32
    loaded = load_model(tmp_path / "run")
    raw = torch.from_numpy(np.random.default_rng(0).random((1, card.in_channels, 20, 28)))
    probs = loaded.predictor(raw.float())
    assert probs.shape == (1, card.num_classes, 20, 28)


def test_an_fc_densenet_run_resumes(sample, tmp_path) -> None:
    train_model(load_config(None, [*COMMON, *DENSENET]), data_dir=sample, out_dir=tmp_path)
    config = load_config(None, [*COMMON, *DENSENET, "train.epochs=2"])
    result = train_model(config, data_dir=sample, out_dir=tmp_path, resume=True)
    assert result.epochs == 2


RESNET = [
    "model.name=resnet-unet",
    "model.resnet_unet.encoder=resnet18",
    "model.resnet_unet.decoder_filters=[4, 4, 4, 4, 4]",
]


def test_a_resnet_unet_starts_from_a_weights_file_and_trains_the_decoder_first(
    sample, tmp_path, torchvision_resnet
) -> None:
    state = torchvision_resnet("resnet18")
    torch.save(state, tmp_path / "resnet18.pth")
    pretrained = [
        f"model.encoder.weights={tmp_path / 'resnet18.pth'}",
        "model.encoder.freeze_epochs=1",
    ]
    run = tmp_path / "run"
    train_model(load_config(None, [*COMMON, *RESNET, *pretrained]), data_dir=sample, out_dir=run)
    checkpoint = load_checkpoint(run / "last.pt")
    bands = checkpoint.card.channel_names
    assert checkpoint.card.size_multiple == 32
    expected = adapt_first_convolution(state["conv1.weight"], bands)
    assert torch.equal(checkpoint.weights["encoder.conv1.weight"], expected)
    parameters = [key for key in state if key.endswith(("weight", "bias")) and key[:3] != "fc."]
    for key in parameters[1:]:
        assert torch.equal(checkpoint.weights[f"encoder.{key}"], state[key]), key

    # The second epoch trains everything; resuming keeps the weights file out of it.
    again = load_config(None, [*COMMON, *RESNET, *pretrained, "train.epochs=2"])
    train_model(again, data_dir=sample, out_dir=run, resume=True)
    trained = load_checkpoint(run / "last.pt").weights
    assert not torch.equal(trained["encoder.layer1.0.conv1.weight"], state["layer1.0.conv1.weight"])


def test_resuming_a_baseline_trains_it_again_to_the_same_model(sample, tmp_path) -> None:
    forest = ["model.name=random-forest", "model.random_forest.trees=4"]
    config = load_config(None, [*COMMON, *forest, "model.random_forest.max_pixels=2000"])
    train_model(config, data_dir=sample, out_dir=tmp_path / "run")
    first = load_checkpoint(tmp_path / "run" / "best.pt").weights
    (tmp_path / "run" / "last.pt").unlink()  # as if killed between its two checkpoints
    train_model(config, data_dir=sample, out_dir=tmp_path / "run", resume=True)
    again = load_checkpoint(tmp_path / "run" / "last.pt").weights
    assert all(torch.equal(first[key], again[key]) for key in first)
