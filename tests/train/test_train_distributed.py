"""Distributed training: two gloo processes step as one process does, rank 0 alone writes,
and a distributed run resumes where it stopped."""

from __future__ import annotations

import pytest
import torch

from spectraseg.config import load_config
from spectraseg.errors import SpectrasegError
from spectraseg.train.checkpoint import load_checkpoint
from spectraseg.train.distributed import Rank, rank_share, threads_per_process
from spectraseg.workflow.launch import train_on_devices
from spectraseg.workflow.training import train_model

from .conftest import TINY_UNET

TINY = [
    *TINY_UNET,
    "model.unet.batch_norm=false",
    "train.patches_per_epoch=8",
    "train.batch_size=8",
    "train.epochs=1",
]
# Plain SGD on a loss that is a mean over pixels: one step of 4 + 4 patches on two ranks is
# one step of 8 patches (Adam's first step divides by the gradient's own size, so it would
# magnify rounding).
ONE_STEP = ["train.optimizer=sgd", "train.momentum=0", "loss.terms={bce: 1.0}"]
RUN_FILES = [
    "best.pt",
    "config.yaml",
    "curves.png",
    "history.csv",
    "last.pt",
    "split.json",
    "train.log",
]


def test_each_rank_takes_every_other_patch_of_the_global_batch() -> None:
    items = list(range(10))
    shares = [list(rank_share(items, Rank(rank, 2), len(items))) for rank in (0, 1)]  # type: ignore[arg-type]
    assert shares == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]
    assert [len(rank_share(items, Rank(rank, 3), 10)) for rank in (0, 1, 2)] == [3, 3, 3]  # type: ignore[arg-type]


def test_processes_share_the_cores() -> None:
    assert threads_per_process(2, 16) == 8
    assert threads_per_process(4, 2) == 1


@pytest.mark.slow
def test_one_step_on_two_processes_equals_one_step_of_the_whole_batch(sample, tmp_path) -> None:
    config = load_config(None, [*TINY, *ONE_STEP])
    train_model(config, data_dir=sample, out_dir=tmp_path / "one")
    train_on_devices(config, devices=2, data_dir=sample, out_dir=tmp_path / "two")
    one, two = (
        load_checkpoint(tmp_path / "one" / "last.pt"),
        load_checkpoint(tmp_path / "two" / "last.pt"),
    )
    assert one.training_state is not None and two.training_state is not None
    assert one.training_state["step"] == two.training_state["step"] == 1
    for name, value in one.weights.items():
        assert torch.allclose(two.weights[name], value, atol=1e-5), name


@pytest.mark.slow
def test_a_two_process_run_writes_from_rank_0_only_and_resumes_at_its_epoch(
    sample, tmp_path
) -> None:
    run = tmp_path / "run"
    config = load_config(None, TINY)
    first = train_on_devices(config, devices=2, data_dir=sample, out_dir=run)
    assert first.epochs == 1
    assert sorted(p.name for p in run.iterdir() if p.name != "tensorboard") == RUN_FILES
    # The event log (when tensorboard is installed) has one writer: rank 0.
    assert len(list((run / "tensorboard").glob("events.*"))) in (0, 1)
    log = (run / "train.log").read_text()
    assert "(rank 0 of 2)" in log and "rank 1" not in log
    resumed = load_config(run / "config.yaml", ["train.epochs=2"])
    second = train_on_devices(resumed, devices=2, data_dir=sample, out_dir=run, resume=True)
    assert second.epochs == 2
    assert load_checkpoint(run / "last.pt").epoch == 2
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 2
    alone = train_model(
        load_config(None, [*TINY, "train.epochs=2"]), data_dir=sample, out_dir=tmp_path / "alone"
    )
    assert abs(second.best_score - alone.best_score) <= 0.05


def test_a_global_batch_that_does_not_split_is_an_error_naming_the_setting(tmp_path) -> None:
    config = load_config(None, [*TINY, "train.batch_size=3"])
    with pytest.raises(SpectrasegError, match=r"train\.batch_size 3"):
        train_on_devices(config, devices=2, data_dir=tmp_path, out_dir=tmp_path / "run")


def test_torchrun_variables_give_the_rank(monkeypatch) -> None:
    for name, value in (
        ("RANK", "3"),
        ("WORLD_SIZE", "8"),
        ("LOCAL_RANK", "1"),
        ("LOCAL_WORLD_SIZE", "2"),
    ):
        monkeypatch.setenv(name, value)
    assert Rank.from_environment() == Rank(rank=3, world_size=8, local_rank=1, local_world_size=2)
    assert Rank.from_environment().device("cuda") == torch.device("cuda", 1)  # type: ignore[union-attr]
    monkeypatch.delenv("RANK")
    assert Rank.from_environment() is None


def test_devices_below_one_is_exit_2(tmp_path, capsys) -> None:
    from spectraseg.cli.main import main

    code = main(
        ["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--devices", "0", "-q"]
    )
    assert code == 2
    assert "--devices 0" in capsys.readouterr().err
