"""Quality of a control's model from its out-of-fold predictions: what the report and the model
card show. Train side (scikit-learn metrics); no I/O.

Single choice: accuracy, macro-F1 and the confusion matrix (rows: annotated label, columns:
predicted). Multiple choice: micro- and macro-F1 and exact-match accuracy of the labels chosen at
MULTILABEL_THRESHOLD. Calibration: expected calibration error (ECE) over 15 equal-width bins of
the confidence (Guo et al. 2017, "On Calibration of Modern Neural Networks"): the top score
against being right for single choice, each label's probability against the label being there
for multiple choice; before and after calibration, with the bins (the reliability diagram).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

BINS = 15


def single_choice_metrics(probabilities: np.ndarray, truth: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and confusion of the arg-max of `probabilities` (n, k) against `truth` (n,) columns."""
    predicted = probabilities.argmax(axis=1)
    columns = np.arange(len(classes))
    return {
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "macro_f1": round(float(f1_score(truth, predicted, labels=columns, average="macro", zero_division=0)), 4),
        "confusion": {"labels": list(classes), "matrix": confusion_matrix(truth, predicted, labels=columns).tolist()},
    }


def multiple_choice_metrics(chosen: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Micro-/macro-F1 and exact match of the 0/1 `chosen` (n, labels) against the 0/1 `truth`."""
    return {
        "micro_f1": round(float(f1_score(truth, chosen, average="micro", zero_division=0)), 4),
        "macro_f1": round(float(f1_score(truth, chosen, average="macro", zero_division=0)), 4),
        "exact_match": round(float(accuracy_score(truth, chosen)), 4),
    }


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> tuple[float, list[dict[str, Any]]]:
    """(ECE, bins) of `confidence` (n,) in [0, 1] against `correct` (n,) bool.

    Each bin is ``{"lower", "upper", "count", "confidence", "accuracy"}`` (the last two None when
    empty); bin i holds confidences in (lower, upper], the first also 0.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    ece, table = 0.0, []
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        mean_confidence = float(confidence[inside].mean()) if count else None
        accuracy = float(correct[inside].mean()) if count else None
        if count:
            ece += count / len(confidence) * abs(accuracy - mean_confidence)
        table.append({
            "lower": round(float(edges[b]), 4), "upper": round(float(edges[b + 1]), 4), "count": count,
            "confidence": None if mean_confidence is None else round(mean_confidence, 4),
            "accuracy": None if accuracy is None else round(accuracy, 4),
        })
    return round(ece, 4), table
