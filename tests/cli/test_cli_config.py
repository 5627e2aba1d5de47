"""`spectraseg config`: the resolved config on stdout; errors as one line with exit 2."""

from __future__ import annotations

import yaml

from spectraseg.cli.main import main
from spectraseg.config import load_config


def test_prints_the_resolved_config_with_overrides(tmp_path, capsys) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("train: {epochs: 5}\n")
    assert main(["config", str(path), "--set", "model.unet.depth=3"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["epochs"] == 5
    assert printed["model"]["unet"]["depth"] == 3
    assert set(printed) >= {"data", "model", "loss", "augment", "sampling", "train"}


def test_printed_config_reads_back_as_the_same_config(tmp_path, capsys) -> None:
    assert main(["config", "--set", "data.indices=[ndwi]"]) == 0
    path = tmp_path / "resolved.yaml"
    path.write_text(capsys.readouterr().out)
    assert load_config(path) == load_config(None, ["data.indices=[ndwi]"])


def test_unknown_key_is_one_line_with_exit_2(tmp_path, capsys) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  epoch: 3\n")
    assert main(["config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"spectraseg config: error: {path}: unknown key 'train.epoch' (did you mean 'epochs'?)"
    ]
