"""Auto-label thresholds: the lowest served score at which predictions are accurate enough.

Rule (stated in every report): from the out-of-fold predictions of a control, sorted by their
calibrated score, the threshold is the lowest score t such that the predictions scoring ≥ t have
a one-sided 95 % Wilson lower confidence bound on their accuracy ≥ the target (AUTO_LABEL_TARGET).
The bound is what makes the rule conservative on small data: with every prediction right, it
takes 52 of them to show 0.95; with 10,000 it costs about 0.4 points of accuracy. No threshold
(None) when no score qualifies. For multiple choice a prediction is right when its set of labels
equals the annotated one. Wilson (1927); the one-sided z is 1.645. No I/O, NumPy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Z = 1.645  # one-sided 95 %
CURVE_POINTS = 50
RULE = "lowest threshold whose out-of-fold predictions at or above it have a one-sided 95 % Wilson lower bound on accuracy >= target"


def choose_threshold(scores: np.ndarray, correct: np.ndarray, target: float) -> dict[str, Any]:
    """The auto-label entry of a control's report from `scores` (n,) and `correct` (n,) bool.

    Returns ``{"target", "threshold", "coverage", "estimated_accuracy", "validated_on", "rule", "curve"}``:
    coverage is the share of the n predictions scoring ≥ threshold and estimated_accuracy their
    accuracy (None / 0 without a threshold); curve holds up to `CURVE_POINTS` points
    ``{"threshold", "coverage", "accuracy"}`` from the highest score down.
    """
    n = len(scores)
    entry: dict[str, Any] = {"target": target, "threshold": None, "coverage": 0.0, "estimated_accuracy": None, "validated_on": n, "rule": RULE}
    if n == 0:
        return entry | {"curve": []}
    order = np.argsort(-scores, kind="stable")
    sorted_scores, hits = scores[order], np.cumsum(correct[order])
    taken = np.arange(1, n + 1)
    last_of_score = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]  # a threshold takes every tied score
    accuracy = hits / taken
    bound = wilson_lower_bound(accuracy, taken)
    qualifying = np.flatnonzero(last_of_score & (bound >= target))
    if len(qualifying):
        k = qualifying[-1]
        entry |= {
            "threshold": float(sorted_scores[k]),
            "coverage": round(float(taken[k] / n), 4),
            "estimated_accuracy": round(float(accuracy[k]), 4),
        }
    points = np.flatnonzero(last_of_score)
    points = points[np.unique(np.linspace(0, len(points) - 1, min(CURVE_POINTS, len(points))).astype(int))]
    entry["curve"] = [
        {"threshold": round(float(sorted_scores[k]), 6), "coverage": round(float(taken[k] / n), 4), "accuracy": round(float(accuracy[k]), 4)}
        for k in points
    ]
    return entry


def wilson_lower_bound(accuracy: np.ndarray, count: np.ndarray, z: float = Z) -> np.ndarray:
    """One-sided Wilson score lower bound of a proportion `accuracy` observed on `count` trials."""
    z2 = z * z
    centre = accuracy + z2 / (2 * count)
    spread = z * np.sqrt(accuracy * (1 - accuracy) / count + z2 / (4 * count * count))
    return (centre - spread) / (1 + z2 / count)
