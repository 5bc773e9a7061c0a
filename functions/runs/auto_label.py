"""Auto-labelling in a prediction run started with ``{"auto_label": true}``: which thresholds
apply, and which tasks of a page get an annotation made from the run's prediction.

Thresholds come only from the version's **signed** manifest
(``report.controls.<control>.auto_label.threshold``, written at training time: the lowest score
whose out-of-fold predictions reach the target accuracy; `functions.model.auto_label`), read with
`functions.versions.verified_manifest`, never from ``report.json``. Every control the run
predicts must have one; otherwise the run imports predictions as usual, creates no annotation
and says why (``auto_label_reason``).

The rule for one task (`select`): it gets an annotation when

1. it holds no annotation at all, cancelled ones (skips) included, and no draft: a task a person
   touched is never auto-labelled;
2. it holds exactly one prediction of the run's version (imported by this chunk, or by an earlier
   run: those are skipped for import but still considered here);
3. that prediction's score reaches the highest of the thresholds. A served score is the lowest of
   its controls' scores (`functions.serving.predict_tasks`), so score >= max(thresholds) means every
   control reached its own threshold (exact with one control, conservative with several: an
   annotation carries every control's result).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from functions import signing, versions
from functions.errors import CorruptModel, CorruptObject
from functions.label_config import parse_label_config
from functions.settings import Settings
from functions.store import ObjectStore


@dataclass(frozen=True)
class Thresholds:
    """What an auto-label run uses: ``{control: threshold}`` (None when it cannot auto-label), and why not."""

    thresholds: dict[str, float] | None
    reason: str | None = None

    @property
    def bar(self) -> float | None:
        """The score a task's prediction must reach (the highest threshold), or None: no auto-labelling."""
        return max(self.thresholds.values()) if self.thresholds else None


def read_thresholds(
    store: ObjectStore, settings: Settings, project: str, version: str, label_config: str | None,
    signer: signing.Signer | None = None,
) -> Thresholds:
    """The thresholds of `version` for the controls of `label_config` that it predicts, from its
    verified manifest. Never raises for a version that cannot auto-label: the reason says why
    (an unverifiable manifest included); raises StoreUnavailable / SigningUnavailable."""
    try:
        manifest = versions.verified_manifest(store, project, version, signer or signing.signer_for(store, settings))
    except (CorruptModel, CorruptObject) as error:
        return Thresholds(None, f"auto-labelling off: the manifest of {version} cannot be verified ({error})")
    return thresholds_of(manifest, version, label_config)


def thresholds_of(manifest: Mapping[str, Any], version: str, label_config: str | None) -> Thresholds:
    """`read_thresholds` on an already verified manifest (pure: see the module docstring)."""
    trained = manifest.get("controls") if isinstance(manifest.get("controls"), dict) else {}
    report = manifest.get("report") if isinstance(manifest.get("report"), dict) else {}
    reported = report.get("controls") if isinstance(report.get("controls"), dict) else {}
    names = [c.name for c in parse_label_config(label_config).controls if c.name in trained]
    if not names:
        return Thresholds(None, f"auto-labelling off: {version} predicts none of the label config's controls")
    thresholds: dict[str, float] = {}
    for name in names:
        control = reported.get(name) if isinstance(reported.get(name), dict) else {}
        auto = control.get("auto_label")
        if not isinstance(auto, dict):
            return Thresholds(None, (f"auto-labelling off: {version} records no auto-label threshold for control {name} "
                                     "(trained before auto-labelling existed): press Start Training, then start the run again"))
        threshold = auto.get("threshold")
        if threshold is None:
            target = auto.get("target")
            return Thresholds(None, (f"auto-labelling off: no score threshold of {version} reached the target accuracy "
                                     f"{target} for control {name} on its validation predictions: label more tasks and train again"))
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1 or math.isnan(threshold):
            return Thresholds(None, f"auto-labelling off: the auto-label threshold of {version} for control {name} is not a score ({threshold!r})")
        thresholds[name] = float(threshold)
    return Thresholds(thresholds)


@dataclass
class Selection:
    """The tasks of one page to auto-label, and why the others are not."""

    tasks: list[int] = field(default_factory=list)
    annotated: int = 0        # a person (or an earlier run) annotated, skipped or drafted it
    below_threshold: int = 0  # its prediction's score is below the bar
    no_prediction: int = 0    # no single prediction of the version (no text, not stored, or two of them)


def select(tasks: Sequence[Mapping[str, Any]], version: str, bar: float, sent: Mapping[int, float]) -> Selection:
    """Choose the tasks of a page (`functions.label_studio.TaskPage` tasks read with
    ``annotations=True``) to auto-label with the predictions of `version`.

    `sent` maps the tasks whose prediction this chunk just imported (and Label Studio stored:
    the caller reads the page again when it stored fewer) to its score; tasks that held the
    version's prediction when the page was read use the stored score."""
    chosen = Selection()
    for task in tasks:
        task_id = int(task["id"])
        if task.get("annotations") or task.get("drafts"):
            chosen.annotated += 1
            continue
        stored = [p.get("score") for p in task.get("predictions") or () if p.get("model_version") == version]
        scores = stored if stored or task_id not in sent else [sent[task_id]]
        if len(scores) != 1 or scores[0] is None:
            chosen.no_prediction += 1
        elif scores[0] >= bar:
            chosen.tasks.append(task_id)
        else:
            chosen.below_threshold += 1
    return chosen


__all__ = ["Thresholds", "Selection", "read_thresholds", "thresholds_of", "select"]
