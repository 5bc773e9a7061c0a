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
    fitted = None
    if options.calibrate:
        fitted = fit_per_label(raw, oof.truth) if multiple else fit_top_label(raw, oof.truth)
    outcome = _served(raw, oof.truth, multiple, fitted, options.multilabel_threshold)
    kept_note = None
    if fitted is not None and outcome["after"][0] > outcome["before"][0]:  # small data: the fit made it worse
        kept_note = "calibration fitted but not served: it did not lower the calibration error of the validation predictions"
        fitted, outcome = None, _served(raw, oof.truth, multiple, None, options.multilabel_threshold)
    metrics = (
        multiple_choice_metrics(outcome["chosen"], oof.truth)
        if multiple
        else single_choice_metrics(raw, oof.truth, list(classes))  # calibration never changes the arg-max
    )
    calibration_report = {
        "method": fitted.kind + "_platt" if fitted else None,
        "ece_before": outcome["before"][0], "ece": outcome["after"][0], "bins": BINS,
        "measured_on": "the out-of-fold predictions the calibration was fitted on (two parameters per output)",
        "reliability_before": outcome["before"][1], "reliability": outcome["after"][1],
    }
    if kept_note:
        calibration_report["note"] = kept_note
    quality = {
        "method": f"{oof.folds}-fold cross-validation: out-of-fold predictions of every annotated example",
        "validated_on": len(raw),
        "folds": oof.folds,
        **metrics,
        "calibration": calibration_report,
    }
    return fitted, {"quality": quality, "auto_label": choose_threshold(outcome["scores"], outcome["correct"], options.target)}


def _served(
    raw: np.ndarray, truth: np.ndarray, multiple: bool, calibration: Calibration | None, threshold: float
) -> dict[str, Any]:
    """What serving with `calibration` gives on the out-of-fold predictions: scores, which are
    right, the chosen labels (multiple choice) and the reliability (ECE, bins) before and after."""
    served = calibration.apply(raw) if calibration else raw
    if multiple:
        chosen, scores = _chosen(served, threshold)
        present = truth.ravel().astype(bool)
        return {"chosen": chosen, "scores": scores, "correct": (chosen == truth).all(axis=1),
                "before": reliability(raw.ravel(), present), "after": reliability(served.ravel(), present)}
    correct = served.argmax(axis=1) == truth
    return {"chosen": None, "scores": served.max(axis=1), "correct": correct,
            "before": reliability(raw.max(axis=1), correct), "after": reliability(served.max(axis=1), correct)}


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
