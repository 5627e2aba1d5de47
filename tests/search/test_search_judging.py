"""How a search judges its trials: no verdict from the pruner before `prune_after_epochs`,
and a score that is the mean of a trial's best epochs, not its luckiest one."""

from __future__ import annotations

import optuna
import pytest

from spectraseg.config import load_config
from spectraseg.search.space import parse_space
from spectraseg.search.study import build_pruner
from spectraseg.search.trial import trial_score


@pytest.mark.parametrize("pruner", ["median", "hyperband"])
def test_no_trial_is_pruned_before_it_has_trained_prune_after_epochs(pruner) -> None:
    parsed = parse_space(
        {
            "pruner": pruner,
            "prune_after_epochs": 3,
            "parameters": {"train.learning_rate": {"low": 0.1, "high": 1.0}},
        },
        "space.yaml",
    )
    study = optuna.create_study(
        direction="maximize", pruner=build_pruner(parsed, load_config(None, ["train.epochs=9"]))
    )
    for _ in range(6):  # strong trials, past the median pruner's four startup trials
        trial = study.ask()
        for epoch in range(1, 10):
            trial.report(0.9, epoch)
        study.tell(trial, 0.9)
    weak = study.ask()
    verdicts = []
    for epoch in range(1, 10):
        weak.report(0.1, epoch)
        verdicts.append(weak.should_prune())
    assert verdicts[:2] == [False, False]
    if pruner == "median":  # Hyperband may have put the trial in a bracket that waits longer
        assert any(verdicts[2:])


def test_a_trial_scores_the_mean_of_its_best_epochs_not_its_luckiest() -> None:
    history = [{"val_jaccard": v} for v in (0.10, 0.30, 0.20, 0.25, float("nan"))]
    assert trial_score(history, 1) == pytest.approx(0.30)
    assert trial_score(history, 3) == pytest.approx((0.30 + 0.25 + 0.20) / 3)
    assert trial_score(history[:2], 3) == pytest.approx(0.20)  # fewer epochs: all of them
    assert trial_score(history[4:], 3) == 0.0  # a NaN epoch scores nothing
