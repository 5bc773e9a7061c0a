import numpy as np
import pytest

from functions.model.auto_label import choose_threshold, wilson_lower_bound


def test_wilson_bound_needs_52_straight_hits_to_show_95_percent():
    assert wilson_lower_bound(np.array([1.0]), np.array([51]))[0] < 0.95 <= wilson_lower_bound(np.array([1.0]), np.array([52]))[0]


def test_threshold_is_the_lowest_score_whose_predictions_meet_the_bound():
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.3, 1.0, 20000)
    correct = rng.uniform(size=scores.size) < scores  # calibrated: accuracy at score s is s
    entry = choose_threshold(scores, correct, 0.95)
    above = scores >= entry["threshold"]
    assert entry["coverage"] == pytest.approx(above.mean(), abs=1e-4)
    assert entry["estimated_accuracy"] == pytest.approx(correct[above].mean(), abs=1e-4)
    assert wilson_lower_bound(correct[above].mean(), above.sum()) >= 0.95
    lower = scores >= entry["threshold"] - 0.01  # a little lower no longer qualifies
    assert wilson_lower_bound(correct[lower].mean(), lower.sum()) < 0.95
    assert entry["validated_on"] == 20000 and 0 < len(entry["curve"]) <= 50
    thresholds = [point["threshold"] for point in entry["curve"]]
    assert thresholds == sorted(thresholds, reverse=True)


def test_small_validation_sets_get_no_threshold_even_when_every_prediction_was_right():
    entry = choose_threshold(np.linspace(0.9, 1.0, 40), np.ones(40, bool), 0.95)
    assert entry["threshold"] is None and entry["coverage"] == 0.0 and entry["estimated_accuracy"] is None


def test_tied_scores_are_taken_together():
    scores = np.array([0.99] * 100 + [0.8] * 100)
    correct = np.array([True] * 100 + [True] * 50 + [False] * 50)
    entry = choose_threshold(scores, correct, 0.9)
    assert entry["threshold"] == 0.99 and entry["coverage"] == 0.5 and entry["estimated_accuracy"] == 1.0


def test_no_predictions_give_no_threshold():
    assert choose_threshold(np.zeros(0), np.zeros(0, bool), 0.95)["threshold"] is None
