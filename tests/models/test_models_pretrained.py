"""Pretrained encoders: torchvision-layout weights fill every encoder tensor, the first
convolution fits any band list, and weights that do not fit are one line naming a key.

The state dicts are built by the `torchvision_resnet` fixture from torchvision's published layout
(names and shapes), so the tests need neither torchvision nor a download.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spectraseg.errors import CheckpointError
from spectraseg.io.state_dict import read_state_dict
from spectraseg.models.pretrained import adapt_first_convolution, load_encoder_weights
from spectraseg.models.resnet import ResNetEncoder
from spectraseg.models.resnet_unet import ResNetUNet

LAYOUTS = ("resnet18", "resnet34", "resnet50")


@pytest.mark.parametrize("name", LAYOUTS)
def test_the_encoder_has_torchvision_keys_and_shapes(name: str, torchvision_resnet) -> None:
    encoder = ResNetEncoder(name, 3)  # type: ignore[arg-type]
    state = torchvision_resnet(name)
    expected = {k: tuple(v.shape) for k, v in state.items() if not k.startswith("fc.")}
    assert {k: tuple(v.shape) for k, v in encoder.state_dict().items()} == expected


def test_a_torchvision_state_dict_fills_every_encoder_weight(tmp_path, torchvision_resnet) -> None:
    state = torchvision_resnet("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    bands = ["blue", "green", "red", "nir", "swir1"]
    model = ResNetUNet(len(bands), 2, encoder="resnet18", decoder_filters=(4, 4, 4, 4, 4))
    load_encoder_weights(model.encoder, read_state_dict(path), channel_names=bands, source="x")
    filled = model.encoder.state_dict()
    for key, value in filled.items():
        if key != "conv1.weight":
            assert torch.equal(value, state[key]), key
    first = filled["conv1.weight"]
    rgb = state["conv1.weight"]
    assert torch.equal(first[:, 0], rgb[:, 2]) and torch.equal(first[:, 2], rgb[:, 0])
    assert torch.equal(first[:, 1], rgb[:, 1])
    assert torch.allclose(first[:, 3], rgb.mean(dim=1) * 3 / 5)
    assert torch.equal(first[:, 3], first[:, 4])


def test_other_channels_get_the_scaled_mean_of_the_rgb_filters() -> None:
    weight = torch.tensor([3.0, 6.0, 9.0]).reshape(1, 3, 1, 1)
    adapted = adapt_first_convolution(weight, ["nir", "Red", "ndvi", "swir", "Blue", "x"])
    assert adapted.flatten().tolist() == [3.0, 3.0, 3.0, 3.0, 9.0, 3.0]


def test_three_unnamed_bands_are_taken_as_rgb_in_order(torchvision_resnet) -> None:
    state = torchvision_resnet("resnet18")
    encoder = ResNetEncoder("resnet18", 3)
    load_encoder_weights(encoder, state, channel_names=["b1", "b2", "b3"], source="x")
    assert torch.equal(encoder.conv1.weight, state["conv1.weight"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("layer2.0.downsample.0.weight"), "missing key 'layer2.0.downsample.0"),
        (lambda s: s.update({"layer5.0.conv1.weight": torch.zeros(1)}), "unexpected key 'layer5"),
        (lambda s: s.update({"bn1.weight": torch.zeros(3)}), r"'bn1.weight' has shape \(3,\)"),
    ],
)
def test_weights_that_do_not_fit_name_the_file_and_the_first_bad_key(
    change, message, torchvision_resnet
) -> None:
    state = torchvision_resnet("resnet18")
    change(state)
    with pytest.raises(CheckpointError, match=f"weights.pth: .*{message}"):
        load_encoder_weights(
            ResNetEncoder("resnet18", 4), state, channel_names="rgbn", source="weights.pth"
        )


def test_a_resnet50_file_does_not_load_into_a_resnet18(torchvision_resnet) -> None:
    with pytest.raises(
        CheckpointError, match=r"resnet18 encoder: unexpected key .layer1\.0\.conv3"
    ):
        load_encoder_weights(
            ResNetEncoder("resnet18", 3),
            torchvision_resnet("resnet50"),
            channel_names=["red", "green", "blue"],
            source="w",
        )


def test_a_weights_file_that_is_not_a_state_dict_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save({"epoch": 3}, path)
    with pytest.raises(CheckpointError, match=r"w.pth: 'epoch' is a int, not a tensor"):
        read_state_dict(path)
    path.write_bytes(b"not torch")
    with pytest.raises(CheckpointError, match=r"w\.pth: cannot read the weights"):
        read_state_dict(path)
