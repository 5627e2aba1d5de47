"""`--tta auto`: the fewest D4 passes within tolerance of the best validation Jaccard."""

from __future__ import annotations

import numpy as np
import torch

from spectraseg.predict.tta_choice import TTA_COUNTS, choose_tta, measure_tta_jaccard


def test_the_fewest_passes_within_tolerance_of_the_best_are_chosen():
    scores = {1: 0.80, 2: 0.8095, 4: 0.8101, 8: 0.8102}
    assert choose_tta(scores, tolerance=0.001)[0] == 2
    assert choose_tta(scores, tolerance=0.0)[0] == 8
    assert choose_tta(scores, tolerance=0.05)[0] == 1


def test_never_more_than_8_passes_whatever_is_recorded():
    assert choose_tta({1: 0.5, 8: 0.6, 16: 0.9, 32: 1.0})[0] == 8
    for scores in ({1: 0.1}, {8: 0.5, 4: 0.5}, {2: float("nan"), 4: 0.3}):
        assert choose_tta(scores)[0] in TTA_COUNTS and choose_tta(scores)[0] <= 8


def test_an_unmeasured_model_keeps_8_passes():
    assert choose_tta(None)[0] == 8
    assert choose_tta({})[0] == 8


def test_keys_read_back_as_strings_choose_the_same():
    # A card stored as JSON has string keys: the choice must not depend on that.
    scores = {1: 0.7, 2: 0.75, 4: 0.7504, 8: 0.751}
    as_json = {str(count): value for count, value in scores.items()}
    assert choose_tta(as_json) == choose_tta(scores)


def test_an_equivariant_model_scores_the_same_with_every_count_and_needs_one_pass(pointwise):
    rng = np.random.default_rng(0)
    model = pointwise(3, 2)
    windows = []
    for _ in range(3):
        image = rng.random((3, 16, 16)).astype(np.float32)
        with torch.inference_mode():
            probs = model(torch.from_numpy(image)[None])[0].numpy()
        mask = probs > 0.5
        mask[:, ::3] = ~mask[:, ::3]  # imperfect, so the Jaccard is not trivially 1
        windows.append((image, mask, np.zeros((16, 16), dtype=bool)))
    scores = measure_tta_jaccard(model, windows, thresholds=(0.5, 0.5))
    assert sorted(scores) == [1, 2, 4, 8]
    assert max(scores.values()) - min(scores.values()) < 1e-9
    assert 0.0 < scores[1] < 1.0
    assert choose_tta(scores)[0] == 1
