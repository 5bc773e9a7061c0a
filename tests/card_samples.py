"""Hand-made version reports for the model card tests (the shapes of the issue-10 contract), with
hostile label names, and a helper that publishes a version with its charts."""

from __future__ import annotations

import copy
import hashlib
import inspect
from typing import Any

from functions import keys, versions
from functions.store import ObjectStore, json_bytes

SCRIPT = "<script>alert(1)</script>"
ONLOAD = '"onload=alert(2) x="'
LABELS = ["Business", "Sci/Tech", SCRIPT, ONLOAD]
MATRIX = [[1100, 80, 10, 130], [90, 1150, 20, 60], [5, 10, 1290, 15], [100, 40, 25, 1155]]


def _bins(shift: float) -> list[dict[str, Any]]:
    bins = []
    for k in range(15):
        lower, upper = round(k / 15, 4), round((k + 1) / 15, 4)
        if upper < 0.25:
            bins.append({"lower": lower, "upper": upper, "count": 0, "confidence": None, "accuracy": None})
            continue
        confidence = (lower + upper) / 2
        accuracy = min(1.0, confidence + shift * (1 - confidence) * confidence * 2)
        bins.append({"lower": lower, "upper": upper, "count": 100 + 30 * k, "confidence": round(confidence, 4), "accuracy": round(accuracy, 4)})
    return bins


def _curve() -> list[dict[str, Any]]:
    points = []
    for k in range(50):
        threshold = 0.99 - 0.015 * k
        coverage = 1 - ((threshold - 0.25) / 0.75) ** 6.33  # 0.616 at the threshold 0.8946
        points.append({"threshold": round(threshold, 4), "coverage": round(coverage, 4), "accuracy": round(1 - 0.12 * coverage**2, 4)})
    return points


CONTROL: dict[str, Any] = {
    "examples": 5280,
    "labels": {label: 1320 for label in LABELS},
    "dropped": {"empty": 3},
    "quality": {
        "method": "5-fold cross-validation: out-of-fold predictions of every annotated task",
        "validated_on": 5280, "folds": 5, "accuracy": 0.8814, "macro_f1": 0.8807,
        "confusion": {"labels": LABELS, "matrix": MATRIX},
        "calibration": {"method": "top_label_platt", "ece_before": 0.067, "ece": 0.015, "bins": 15,
                        "reliability_before": _bins(0.35), "reliability": _bins(0.03)},
    },
    "auto_label": {
        "target": 0.95, "threshold": 0.8946, "coverage": 0.616, "estimated_accuracy": 0.9563, "validated_on": 5280,
        "rule": "lowest threshold whose out-of-fold predictions at or above it have a 95 % Wilson lower bound >= target",
        "curve": _curve(),
    },
    "suspects": [
        {"task": 1234, "given": SCRIPT, "suggested": "Business", "confidence": 0.93, "given_probability": 0.02,
         "text": f"Stocks <b>fell</b> {ONLOAD} & rose " + "x" * 300},
        {"task": None, "given": "Sci/Tech", "suggested": ONLOAD, "confidence": 0.81, "given_probability": 0.05, "text": "chips"},
    ],
    "suspects_found": 61,
}


def control_report() -> dict[str, Any]:
    """A fresh copy of the single-choice control report."""
    return copy.deepcopy(CONTROL)


def manifest_body(control: dict[str, Any] | None = None) -> dict[str, Any]:
    """What training passes to `versions.publish` as the manifest (before digests and numbering)."""
    return {
        "report": {"source": "annotation_log", "tasks_seen": 5300, "dropped": {"skipped": 20}, "fit_seconds": 12.3,
                   "controls": {"topic": control if control is not None else control_report()}},
        "params": {"C": 10.0, "preset": "default"},
        "controls": {"topic": {"to_name": "news", "data_key": "text", "multiple": False}},
        "sklearn_version": "1.9.1",
    }


def publish_card(store: ObjectStore, project: str, job_id: str, manifest: dict[str, Any], charts: dict | None, **kwargs: Any) -> str:
    """Publish a version without a model (no fit needed) and, when `charts` is given, its
    ``charts.json`` with ``charts_sha256`` in the signed manifest: through `versions.publish`
    when it takes `charts`, else stored here the same way."""
    labels = {"topic": LABELS}
    if charts is not None and "charts" in inspect.signature(versions.publish).parameters:
        return versions.publish(store, project, job_id, {}, {}, labels, manifest, charts=charts, **kwargs)
    data = json_bytes(charts) if charts is not None else None
    if data is not None:
        manifest = manifest | {"charts_sha256": hashlib.sha256(data).hexdigest()}
    version = versions.publish(store, project, job_id, {}, {}, labels, manifest, **kwargs)
    if data is not None:
        store.put(keys.version_object(project, version, "charts.json"), data)
    return version
