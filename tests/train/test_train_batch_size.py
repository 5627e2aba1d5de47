"""`train.batch_size_auto`: the batch is halved until a training step fits the device, the
tries leave no trace, and the size chosen is the one training runs with and records."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spectraseg.config import load_config
from spectraseg.data.dataset import ValidationSet
from spectraseg.errors import ConfigError
from spectraseg.models.unet import UNet
from spectraseg.sample import generate_sample
from spectraseg.train.batch_size import largest_fitting_batch, restored_step
from spectraseg.train.fit import TrainSettings, fit
from spectraseg.train.loop import train_one_epoch
from spectraseg.train.losses import LossSettings, build_loss
from spectraseg.workflow.training import train_model

CPU = torch.device("cpu")


def runs_out_above(limit: int, tried: list[int] | None = None):
    """A step that raises CUDA's out-of-memory error for batches larger than `limit`."""

    def step(size: int) -> None:
        if tried is not None:
            tried.append(size)
        if size > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    return step


def test_halving_stops_at_the_first_batch_that_fits() -> None:
    tried: list[int] = []
    assert largest_fitting_batch(32, runs_out_above(5, tried)) == 4
    assert tried == [32, 16, 8, 4]


def test_a_batch_that_fits_at_once_is_kept() -> None:
    assert largest_fitting_batch(8, runs_out_above(100)) == 8


def test_torchs_generic_out_of_memory_error_halves_too() -> None:
    def step(size: int) -> None:
        if size > 2:
            raise torch.OutOfMemoryError("out of memory")

    assert largest_fitting_batch(8, step) == 2


def test_not_even_one_patch_is_a_config_error_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"train\.batch_size_auto: even a batch of 1 patch"):
        largest_fitting_batch(4, runs_out_above(0))


def test_other_errors_are_not_taken_for_out_of_memory() -> None:
    def step(size: int) -> None:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        largest_fitting_batch(4, step)


def test_a_try_leaves_weights_statistics_optimizer_and_random_state_as_they_were() -> None:
    torch.manual_seed(0)
    model = UNet(3, 2, depth=3, base_filters=4, dropout=0.5)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    image = torch.randn(2, 3, 16, 16)
    batch = (image, (image[:, :2] > 0).float(), torch.zeros(2, 16, 16, dtype=torch.bool))
    rng = torch.get_rng_state()  # dropout draws from it during the step

    def step() -> None:
        train_one_epoch(
            model,
            [batch],
            optimizer,
            build_loss(LossSettings(), "sigmoid"),
            device=CPU,
            learning_rate=lambda step: 0.1,
        )

    restored_step(model, optimizer, step, device=CPU)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert optimizer.state_dict()["state"] == {}
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


class Patches(torch.utils.data.Dataset):
    """Patch `index` of every epoch: a fixed random 4-band image and two masks from it."""

    def __init__(self, length: int) -> None:
        self.length = length

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        image = torch.randn(4, 16, 16, generator=torch.Generator().manual_seed(index))
        return image, torch.stack([image[0] > 0, image[1] > 0]), torch.zeros(16, 16, dtype=bool)


class OutOfMemoryAbove(nn.Module):
    """`network`, except that training batches larger than `limit` run out of memory."""

    def __init__(self, network: nn.Module, limit: int) -> None:
        super().__init__()
        self.network, self.limit = network, limit

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.training and image.shape[0] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return self.network(image)


def train_tiny(settings: TrainSettings, limit: int):
    torch.manual_seed(0)
    image = np.random.default_rng(0).normal(size=(4, 16, 16)).astype(np.float32)
    validation = ValidationSet(
        images=(image,),
        masks=(np.stack([image[0] > 0, image[1] > 0]),),
        ignored=(np.zeros((16, 16), dtype=bool),),
        windows=(),
    )
    return fit(
        OutOfMemoryAbove(UNet(4, 2, depth=3, base_filters=4), limit),
        Patches(16),
        validation,
        settings=settings,
        loss_fn=build_loss(LossSettings(), "sigmoid"),
        head="sigmoid",
        device=CPU,
        class_names=("a", "b"),
        size_multiple=8,
    )


def test_an_injected_out_of_memory_halves_the_batch_and_training_completes() -> None:
    settings = TrainSettings(
        epochs=2, batch_size=8, batch_size_auto=True, patches_per_epoch=16, num_workers=0, threads=1
    )
    result = train_tiny(settings, limit=4)
    assert result.epochs == 2 and result.stopped == "epochs"
    assert [row["batch_size"] for row in result.history] == [4, 4]
    assert [row["step"] for row in result.history] == [4, 8]  # 16 patches a epoch, 4 a step


def test_without_batch_size_auto_an_out_of_memory_is_not_caught() -> None:
    settings = TrainSettings(epochs=1, batch_size=8, num_workers=0, threads=1)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        train_tiny(settings, limit=4)


def test_a_batch_that_fits_trains_exactly_as_without_the_search() -> None:
    fixed = TrainSettings(epochs=1, batch_size=4, patches_per_epoch=16, num_workers=0, threads=1)
    searched = fixed.model_copy(update={"batch_size_auto": True})
    plain, probed = train_tiny(fixed, limit=100), train_tiny(searched, limit=100)
    for name, value in plain.best_weights.items():
        assert torch.equal(value, probed.best_weights[name]), name


def test_a_resumed_run_steps_with_the_batch_it_found_instead_of_searching_again(tmp_path) -> None:
    sample = generate_sample(tmp_path / "sample", scenes=3, size=64, seed=1)
    tiny = ["model.unet.depth=3", "model.unet.base_filters=4", "data.patch_size=32"]
    tiny += ["train.patches_per_epoch=8", "train.num_workers=0", "train.threads=1"]
    tiny += ["train.batch_size_auto=true", "train.early_stopping_patience=null"]
    run = tmp_path / "run"
    train_model(
        load_config(None, [*tiny, "train.batch_size=4", "train.epochs=1"]),
        data_dir=sample,
        out_dir=run,
    )
    # A larger start would fit on the CPU: only the recorded size keeps the run exact.
    config = load_config(None, [*tiny, "train.batch_size=8", "train.epochs=2"])
    result = train_model(config, data_dir=sample, out_dir=run, resume=True)
    assert [row["batch_size"] for row in result.history] == [4, 4]
