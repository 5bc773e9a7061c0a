"""From class probabilities to Label Studio choices. Pure NumPy: shared by serving and evaluation.

Single choice: the most probable label; its probability is the score.
Multiple choice (``choice="multiple"``): every label whose probability reaches the threshold,
and at least the most probable one; the score is the lowest probability among the listed
labels, so a score under the threshold says that only the top label was kept.
"""

from __future__ import annotations

import numpy as np


def decide(probabilities: np.ndarray, multiple: bool, threshold: float) -> list[tuple[list[int], float]]:
    """For each row of `probabilities` (n_samples, n_classes): (column indices chosen, score)."""
    decisions = []
    best = probabilities.argmax(axis=1)
    for row, top in zip(probabilities, best):
        if not multiple:
            decisions.append(([int(top)], float(row[top])))
            continue
        chosen = [int(i) for i in np.flatnonzero(row >= threshold)] or [int(top)]
        chosen.sort(key=lambda i: -row[i])
        decisions.append((chosen, float(row[chosen].min())))
    return decisions
