"""From a control's out-of-fold predictions to what its version records and serves: the calibration,
the quality, the auto-label threshold and the ranked suspect annotations. Train side; no I/O.

Everything here is computed on the same out-of-fold probabilities (`functions.model.out_of_fold`):
the calibration is fitted on them (`functions.model.calibration`), the quality and the auto-label
threshold are measured on the calibrated scores the API will serve, and suspects come from the
uncalibrated probabilities (confident learning uses per-label average confidences, which a
monotone rescaling of the top score would distort).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from functions.model.auto_label import choose_threshold
from functions.model.calibration import Calibration, fit_per_label, fit_top_label
from functions.model.decisions import decide
from functions.model.out_of_fold import MIN_EXAMPLES, OutOfFold
from functions.model.quality import BINS, multiple_choice_metrics, reliability, single_choice_metrics

TEXT_EXCERPT = 200  # characters of a suspect's text kept in the report


@dataclass(frozen=True)
class ValidationOptions:
    """What the settings decide: CALIBRATE_SCORES, AUTO_LABEL_TARGET, MULTILABEL_THRESHOLD, SUSPECTS_LIMIT."""

    calibrate: bool = True
    target: float = 0.95
    multilabel_threshold: float = 0.5
    suspects_limit: int = 50


def validate(
    oof: OutOfFold | None, classes: Sequence[str], multiple: bool, options: ValidationOptions
) -> tuple[Calibration | None, dict[str, Any]]:
    """(calibration to serve or None, the control's report entries ``quality`` and ``auto_label``).

    With no out-of-fold predictions (too few examples, or CROSS_VALIDATION_FOLDS=0) the report says
    why and the auto-label threshold is None: the version then never auto-labels.
    """
    if oof is None:
        note = (
            f"not cross-validated: fewer than {MIN_EXAMPLES} examples, or CROSS_VALIDATION_FOLDS=0; "
            "no calibration, auto-label threshold or suspects"
        )
        return None, {"quality": {"validated_on": 0, "note": note}, "auto_label": choose_threshold(np.zeros(0), np.zeros(0, bool), options.target) | {"note": note}}
    raw = oof.probabilities
    if multiple:
        calibration = fit_per_label(raw, oof.truth) if options.calibrate else None
        served = calibration.apply(raw) if calibration else raw
        chosen, scores = _chosen(served, options.multilabel_threshold)
        correct = (chosen == oof.truth).all(axis=1)
        metrics = multiple_choice_metrics(chosen, oof.truth)
        present = oof.truth.ravel().astype(bool)
        before, after = reliability(raw.ravel(), present), reliability(served.ravel(), present)
    else:
        calibration = fit_top_label(raw, oof.truth) if options.calibrate else None
        served = calibration.apply(raw) if calibration else raw
        scores, correct = served.max(axis=1), served.argmax(axis=1) == oof.truth
        metrics = single_choice_metrics(raw, oof.truth, list(classes))  # calibration never changes the arg-max
        before, after = reliability(raw.max(axis=1), correct), reliability(scores, correct)
    quality = {
        "method": f"{oof.folds}-fold cross-validation: out-of-fold predictions of every annotated example",
        "validated_on": len(raw),
        "folds": oof.folds,
        **metrics,
        "calibration": {
            "method": calibration.kind + "_platt" if calibration else None,
            "ece_before": before[0], "ece": after[0], "bins": BINS,
            "reliability_before": before[1], "reliability": after[1],
        },
    }
    return calibration, {"quality": quality, "auto_label": choose_threshold(scores, correct, options.target)}


def suspect_entries(
    oof: OutOfFold | None, classes: Sequence[str], multiple: bool, texts: Sequence[str], task_ids: Sequence[int | None], limit: int
) -> dict[str, Any]:
    """The report's ``suspects`` (ranked, at most `limit`) and ``suspects_found`` for one control.

    Single choice: ``given`` / ``suggested`` are labels, ``confidence`` the probability of the
    suggested one. Multiple choice: they are lists of labels (the suggestion flips every flagged
    label), ``confidence`` the lowest probability the model gives to any flipped value.
    """
    if oof is None:
        return {"suspects": [], "suspects_found": 0, "suspects_note": "not cross-validated: no suspects"}
    from functions.model.confident_learning import find_label_issues, find_multilabel_issues

    if multiple:
        issues = find_multilabel_issues(oof.truth, oof.probabilities)
        names = lambda row: [classes[j] for j, present in enumerate(row) if present]  # noqa: E731
        found = [
            {"index": issue.index, "given": names(issue.given), "suggested": names(issue.suggested),
             "confidence": issue.confidence, "given_probability": None}
            for issue in issues[:limit]
        ]
    else:
        issues = find_label_issues(oof.truth, oof.probabilities)
        found = [
            {"index": issue.index, "given": classes[issue.given], "suggested": classes[issue.suggested],
             "confidence": issue.confidence, "given_probability": round(float(issue.given_probability), 4)}
            for issue in issues[:limit]
        ]
    return {
        "suspects": [
            {"task": task_ids[entry["index"]], **_rounded(entry), "text": texts[entry["index"]][:TEXT_EXCERPT]}
            for entry in found
        ],
        "suspects_found": len(issues),
    }


def _rounded(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: round(float(value), 4) if key == "confidence" else value for key, value in entry.items() if key != "index"}


def _chosen(probabilities: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(0/1 matrix of the labels served, (n,) served scores) for multiple choice."""
    chosen = np.zeros(probabilities.shape, dtype=int)
    scores = np.zeros(len(probabilities))
    for row, (columns, score) in enumerate(decide(probabilities, True, threshold)):
        chosen[row, columns] = 1
        scores[row] = score
    return chosen, scores
