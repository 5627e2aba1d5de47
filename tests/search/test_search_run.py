"""`spectraseg search`: trials that train for real, resumable, refinable, with one-line errors."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from spectraseg.cli.main import main
from spectraseg.errors import ConfigError
from spectraseg.search.runner import SearchOptions, run_search
from spectraseg.search.show import show_study
from spectraseg.search.storage import open_storage, study_names
from spectraseg.search.study import BEST_FILE
from spectraseg.search.suggest import write_suggested_space

pytestmark = pytest.mark.slow


def trials_of(out: Path, study: str = "search") -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=study, storage=open_storage(out, None)).trials


def search(sample: Path, out: Path, config: Path, space: Path, *extra: str) -> int:
    args = ["-q", "search", "--data", str(sample), "--out", str(out)]
    return main([*args, "--config", str(config), "--space", str(space), *extra])


def test_two_trials_write_a_best_yaml_that_train_accepts_and_a_rerun_adds_one(
    sample, tiny_config, tiny_space, tmp_path
) -> None:
    out = tmp_path / "search"
    assert search(sample, out, tiny_config, tiny_space, "--trials", "2") == 0
    assert [t.state.name for t in trials_of(out)] == ["COMPLETE", "COMPLETE"]
    assert sorted(p.name for p in (out / "trials").iterdir()) == ["search-0000", "search-0001"]
    best = out / BEST_FILE
    run = tmp_path / "run"
    args = ["-q", "train", "--data", str(sample), "--out", str(run), "--config", str(best)]
    assert main([*args, "--epochs", "1"]) == 0
    assert (run / "best.pt").is_file()

    rerun = ["-q", "search", "--data", str(sample), "--out", str(out), "--trials", "1"]
    assert main(rerun) == 0
    assert len(trials_of(out)) == 3


def test_a_crashing_trial_is_recorded_failed_and_the_study_goes_on(
    sample, tiny_config, tmp_path
) -> None:
    # A softmax head with a changed loss that keeps BCE fails when training starts (the
    # default loss would take cross-entropy instead).
    tiny_config.write_text(tiny_config.read_text() + "loss: {terms: {bce: 1.0, dice: 1.0}}\n")
    space = tmp_path / "space.yaml"
    space.write_text("parameters:\n  model.unet.head: {choices: [sigmoid, softmax]}\n")
    out = tmp_path / "search"
    options = SearchOptions(
        data_dir=sample, out_dir=out, config_path=tiny_config, space_path=space, trials=3, seed=0
    )
    outcome = run_search(options)
    trials = trials_of(out)
    failed = [t for t in trials if t.state == optuna.trial.TrialState.FAIL]
    assert outcome.finished == 3
    assert failed, "seed 0 draws softmax at least once in the first trials"
    assert all("softmax head" in t.user_attrs["error"] for t in failed)
    assert all(t.params["model.unet.head"] == "sigmoid" for t in trials if t not in failed)


def test_refining_starts_a_seeded_study_and_leaves_the_old_one_alone(
    sample, tiny_config, tiny_space, tmp_path
) -> None:
    out = tmp_path / "search"
    assert search(sample, out, tiny_config, tiny_space, "--trials", "3") == 0
    before = [(t.number, t.state, t.value, t.params) for t in trials_of(out)]
    suggested = write_suggested_space(out)
    assert search(sample, out, tiny_config, suggested, "--trials", "1") == 0

    assert study_names(open_storage(out, None)) == ["search", "search-r2"]
    assert [(t.number, t.state, t.value, t.params) for t in trials_of(out)] == before
    refined = optuna.load_study(study_name="search-r2", storage=open_storage(out, None))
    assert refined.user_attrs["parent"] == "search"
    seeded = [t for t in refined.trials if "seeded_from" in t.user_attrs]
    ran = [t for t in refined.trials if "seeded_from" not in t.user_attrs]
    assert seeded, "the top trials fit the space narrowed around them"
    assert len(ran) == 1
    table, figures = show_study(out)
    assert "search-r2 <- search" in table
    assert table.splitlines()[1].split() == ["trial", "score", "best", "parameters"]
    assert any(p.suffix == ".png" for p in figures)


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(lines) == 1, lines
    return lines[0]


def test_trials_and_total_trials_together_are_refused(sample, tmp_path, capsys) -> None:
    args = ["search", "--data", str(sample), "--out", str(tmp_path / "s")]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--trials", "1", "--total-trials", "2"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in error_line(capsys)


def test_show_on_a_folder_without_a_search_exits_2(tmp_path, capsys) -> None:
    assert main(["search", "--show", "--out", str(tmp_path / "nothing")]) == 2
    assert "no search here" in error_line(capsys)


def test_show_names_an_unknown_study_with_a_did_you_mean(
    sample, tiny_config, tiny_space, tmp_path, capsys
) -> None:
    out = tmp_path / "search"
    assert search(sample, out, tiny_config, tiny_space, "--trials", "1") == 0
    capsys.readouterr()
    assert main(["search", "--show", "--out", str(out), "--study", "serch"]) == 2
    assert "did you mean 'search'" in error_line(capsys)


def test_a_patch_range_larger_than_every_scene_is_refused(
    sample, tiny_config, tmp_path, capsys
) -> None:
    space = tmp_path / "space.yaml"
    space.write_text("parameters:\n  data.patch_size: {low: 128, high: 256, step: 32}\n")
    assert search(sample, tmp_path / "s", tiny_config, space, "--trials", "1") == 2
    assert "larger than the 64 px patches" in error_line(capsys)


def test_an_unreachable_storage_is_one_line_and_writes_nothing(sample, tmp_path, capsys) -> None:
    out = tmp_path / "s"
    url = "postgresql://nobody:secret@127.0.0.1:9/none"
    code = main(["search", "--data", str(sample), "--out", str(out), "--trials", "1",
                 "--storage", url])  # fmt: skip
    assert code == 2
    line = error_line(capsys)
    assert "cannot open the study database" in line and "secret" not in line
    assert not out.exists()


def test_a_study_started_with_another_config_is_not_mixed(
    sample, tiny_config, tiny_space, tmp_path
) -> None:
    out = tmp_path / "search"
    options = SearchOptions(
        data_dir=sample, out_dir=out, config_path=tiny_config, space_path=tiny_space, trials=1
    )
    run_search(options)
    other = tmp_path / "other.yaml"
    other.write_text(tiny_config.read_text().replace("epochs: 2", "epochs: 1"))
    with pytest.raises(ConfigError, match="was started with another config"):
        run_search(SearchOptions(data_dir=sample, out_dir=out, config_path=other, trials=1))
