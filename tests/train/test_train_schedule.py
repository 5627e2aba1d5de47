"""Learning-rate schedules: pure functions of the step, plus reduce-on-plateau's counter."""

from __future__ import annotations

import itertools

import pytest

from spectraseg.train.schedule import Plateau, ScheduleSettings, learning_rate


def rates(
    settings: ScheduleSettings,
    steps: int,
    *,
    per_epoch: int = 10,
    epochs: int = 10,
    reductions: int = 0,
) -> list[float]:
    return [
        learning_rate(
            step,
            settings,
            base=1.0,
            steps_per_epoch=per_epoch,
            total_epochs=epochs,
            reductions=reductions,
        )
        for step in range(steps)
    ]


def test_constant_stays_at_the_base_rate() -> None:
    assert set(rates(ScheduleSettings(name="constant"), 50)) == {1.0}


def test_step_decay_multiplies_by_the_factor_every_interval() -> None:
    settings = ScheduleSettings(name="step", decay_every_epochs=2, decay_factor=0.1)
    values = rates(settings, 60)
    assert values[19] == 1.0
    assert values[20] == pytest.approx(0.1)
    assert values[40] == pytest.approx(0.01)


def test_exponential_decay_is_smooth_and_meets_step_decay_at_interval_ends() -> None:
    settings = ScheduleSettings(name="exponential", decay_every_epochs=2, decay_factor=0.1)
    values = rates(settings, 41)
    assert values[20] == pytest.approx(0.1) and values[40] == pytest.approx(0.01)
    assert all(a > b for a, b in itertools.pairwise(values))


def test_cosine_falls_from_the_base_to_the_floor_over_training() -> None:
    settings = ScheduleSettings(name="cosine", min_ratio=0.01)
    values = rates(settings, 101)
    assert values[0] == 1.0
    assert values[50] == pytest.approx(0.505)
    assert values[100] == pytest.approx(0.01)
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_cosine_under_a_time_budget_follows_whichever_runs_out_first() -> None:
    settings = ScheduleSettings(name="cosine", min_ratio=0.0)

    def rate(step: int, share: float) -> float:
        return learning_rate(
            step, settings, base=1.0, steps_per_epoch=10, total_epochs=10, budget_share=share
        )

    assert rate(0, 0.5) == pytest.approx(0.5)  # half the minutes spent: half way down
    assert rate(50, 0.0) == pytest.approx(0.5)  # half the epochs done: the same
    assert rate(50, 0.25) == rate(50, 0.0)  # the epochs ran out faster than the minutes
    assert rate(10, 1.0) == 0.0  # the budget spent: the floor, whatever the epoch
    constant = ScheduleSettings(name="constant")
    assert learning_rate(5, constant, base=1.0, steps_per_epoch=1, total_epochs=10,
                         budget_share=0.9) == 1.0  # fmt: skip


def test_warmup_ramps_linearly_up_to_the_schedule() -> None:
    settings = ScheduleSettings(name="constant", warmup_epochs=1)
    values = rates(settings, 20)
    assert values[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert values[10:] == [1.0] * 10


def test_plateau_cuts_the_rate_after_patience_validations_without_progress() -> None:
    plateau = Plateau(patience=2)
    cuts = [plateau.update(score) for score in (0.1, 0.2, 0.2, 0.15, 0.3, 0.1, 0.1)]
    assert cuts == [0, 0, 0, 1, 1, 1, 2]
    settings = ScheduleSettings(name="plateau", decay_factor=0.5)
    assert rates(settings, 1, reductions=plateau.reductions) == [0.25]


def test_plateau_state_round_trips() -> None:
    plateau = Plateau(patience=3)
    plateau.update(0.5)
    plateau.update(0.4)
    copy = Plateau(patience=3)
    copy.load_state_dict(plateau.state_dict())
    assert copy == plateau
