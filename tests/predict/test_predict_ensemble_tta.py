"""An ensemble's `--tta auto`: its members' validation Jaccard per TTA count, weighted, decides."""

from __future__ import annotations

from spectraseg.predict.ensemble import ensemble_card
from spectraseg.predict.tta_choice import choose_tta

FLAT = {1: 0.70, 2: 0.705, 4: 0.7052, 8: 0.7053}
"""A member that gains nothing past 2 passes."""
STEEP = {1: 0.50, 2: 0.52, 4: 0.53, 8: 0.54}
"""A member that gains with every pass."""


def test_the_ensemble_scores_each_tta_count_by_its_members_weighted_mean(make_checkpoint, tmp_path):
    make_checkpoint(name="a.pt", class_names=("building",), tta_jaccard=FLAT)
    make_checkpoint(name="b.pt", class_names=("water",), class_ids=(2,), tta_jaccard=STEEP)
    ensemble = tmp_path / "ensemble.yaml"
    ensemble.write_text("members: [{path: a.pt, weight: 3}, {path: b.pt}]\n")

    scores = ensemble_card(ensemble).tta_jaccard

    assert scores is not None
    assert scores[1] == (3 * 0.70 + 0.50) / 4
    assert scores[8] == (3 * 0.7053 + 0.54) / 4


def test_members_that_gain_nothing_from_tta_give_the_ensemble_one_pass(make_checkpoint, tmp_path):
    flat = {1: 0.8, 2: 0.8, 4: 0.8, 8: 0.8005}
    make_checkpoint(name="a.pt", class_names=("building",), tta_jaccard=flat)
    make_checkpoint(name="b.pt", class_names=("water",), class_ids=(2,), tta_jaccard=flat)
    ensemble = tmp_path / "ensemble.yaml"
    ensemble.write_text("members: [{path: a.pt}, {path: b.pt}]\n")

    assert choose_tta(ensemble_card(ensemble).tta_jaccard)[0] == 1


def test_a_member_without_tta_scores_leaves_the_ensemble_unmeasured(make_checkpoint, tmp_path):
    make_checkpoint(name="a.pt", class_names=("building",), tta_jaccard=FLAT)
    make_checkpoint(name="b.pt", class_names=("water",), class_ids=(2,))
    ensemble = tmp_path / "ensemble.yaml"
    ensemble.write_text("members: [{path: a.pt}, {path: b.pt}]\n")

    assert ensemble_card(ensemble).tta_jaccard is None
    assert choose_tta(None)[0] == 8
