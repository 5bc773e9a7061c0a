"""Turn Label Studio tasks (export format) into training examples, one set per control.

Rules (DESIGN §4, issue 2): cancelled (skipped) and empty annotations are ignored, and so are
annotations the model made itself (auto-labelling, see `is_model_made`); each task
contributes one annotation: a ground-truth one if there is one, else the most recently updated;
labels the current config no longer has are dropped; the text comes from the data key the
config names. Every task that gives no example is counted under one reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from functions.label_config import ChoicesControl, LabelConfig

SKIPPED = "skipped"
EMPTY = "empty"
ONLY_SOME_CONTROLS = "only_some_controls"
UNKNOWN_LABEL = "unknown_label"
NO_TEXT = "no_text"
AUTO_LABELED = "auto_labeled"


@dataclass
class ControlExamples:
    """Examples for one control: ``texts[i]`` is labelled ``targets[i]`` (a tuple of labels) in
    the task whose Label Studio id is ``task_ids[i]`` (None when the task had no integer id)."""

    control: ChoicesControl
    texts: list[str] = field(default_factory=list)
    targets: list[tuple[str, ...]] = field(default_factory=list)
    task_ids: list[int | None] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)

    def label_counts(self) -> dict[str, int]:
        """Examples per label, in config order, labels with none left out."""
        counts = Counter(label for target in self.targets for label in target)
        return {label: counts[label] for label in self.control.labels if counts[label]}


@dataclass
class TrainingSet:
    """What `build_training_set` found: per-control examples and task-level drop counts."""

    tasks_seen: int
    controls: dict[str, ControlExamples]
    dropped: Counter[str]

    def report(self) -> dict[str, Any]:
        """JSON-ready counts for the job record and the version manifest."""
        return {
            "tasks_seen": self.tasks_seen,
            "dropped": dict(self.dropped),
            "controls": {
                name: {
                    "examples": len(examples.texts),
                    "dropped": dict(examples.dropped),
                    "labels": examples.label_counts(),
                }
                for name, examples in self.controls.items()
            },
        }


def build_training_set(tasks: Iterable[Mapping[str, Any]], config: LabelConfig) -> TrainingSet:
    """Examples for every control of `config` from `tasks` in Label Studio's JSON export format.

    Each task is ``{"id", "data": {...}, "annotations": [{"result", "was_cancelled",
    "ground_truth", "updated_at", ...}]}``; unknown keys are ignored.
    """
    per_control = {c.name: ControlExamples(c) for c in config.controls}
    dropped: Counter[str] = Counter()
    seen = 0
    for task in tasks:
        seen += 1
        if not isinstance(task, Mapping):
            dropped[EMPTY] += 1
            continue
        annotations = task.get("annotations")
        annotation, reason = choose_annotation(annotations if isinstance(annotations, list) else [])
        if annotation is None:
            dropped[reason] += 1
            continue
        values = _choices_by_control(annotation["result"])
        if not any(name in values for name in per_control):
            dropped[EMPTY] += 1
            continue
        data = task.get("data") if isinstance(task.get("data"), Mapping) else {}
        task_id = task.get("id")
        task_id = task_id if isinstance(task_id, int) and not isinstance(task_id, bool) else None
        for name, examples in per_control.items():
            _add_example(examples, values.get(name), data, task_id)
    return TrainingSet(seen, per_control, dropped)


def choose_annotation(annotations: list[Any]) -> tuple[dict[str, Any] | None, str]:
    """The annotation a task trains on, or None and the reason (`SKIPPED`, `AUTO_LABELED` or `EMPTY`).

    Annotations that are not objects, or whose ``result`` is not a non-empty list, are empty.
    """
    live = [a for a in annotations if isinstance(a, Mapping) and not a.get("was_cancelled")]
    if not live:
        return None, SKIPPED if any(isinstance(a, Mapping) for a in annotations) else EMPTY
    human = [a for a in live if not is_model_made(a)]
    if not human:
        return None, AUTO_LABELED
    live = human
    filled = [a for a in live if isinstance(a.get("result"), list) and a["result"]]
    if not filled:
        return None, EMPTY
    ground_truth = [a for a in filled if a.get("ground_truth")]
    return max(ground_truth or filled, key=_recency), ""


def is_model_made(annotation: Mapping[str, Any]) -> bool:
    """True for an annotation a prediction run's auto-labelling created and no person has touched.

    Label Studio 1.23.2's "Create Annotations From Predictions" action (what auto-labelling calls)
    sets ``parent_prediction`` and leaves ``lead_time`` and ``updated_by`` empty; a person who
    submits from a prediction in the editor leaves a ``lead_time``, and one who edits the model's
    annotation sets ``updated_by`` (tests/ls_wire_runs/47, 20, 38). Training on the model's own
    labels would only confirm its mistakes, and would bias its calibration and thresholds.
    """
    return bool(annotation.get("parent_prediction")) and not annotation.get("lead_time") and not annotation.get("updated_by")


def _add_example(examples: ControlExamples, values: list[str] | None, data: Mapping[str, Any], task_id: int | None) -> None:
    control = examples.control
    if not values:
        examples.dropped[ONLY_SOME_CONTROLS] += 1
        return
    text = data.get(control.data_key)
    if not isinstance(text, str) or not text.strip():
        examples.dropped[NO_TEXT] += 1
        return
    known = [v for v in values if v in control.labels]
    if len(known) < len(values) and (not control.multiple or not known):
        examples.dropped[UNKNOWN_LABEL] += 1
        return
    examples.texts.append(text)
    examples.targets.append(tuple(known) if control.multiple else (known[0],))
    examples.task_ids.append(task_id)


def _choices_by_control(result: list[Any]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for item in result:
        if not isinstance(item, Mapping) or str(item.get("type", "")).lower() != "choices":
            continue
        value = item.get("value")
        choices = value.get("choices") if isinstance(value, Mapping) else None
        if isinstance(choices, list) and isinstance(item.get("from_name"), str):
            values.setdefault(item["from_name"], []).extend(c for c in choices if isinstance(c, str))
    return values


def _recency(annotation: Mapping[str, Any]) -> tuple[float, float, str]:
    return (
        timestamp_of(annotation.get("updated_at")),
        timestamp_of(annotation.get("created_at")),
        str(annotation.get("id", "")).zfill(20),
    )


def timestamp_of(value: Any) -> float:
    """Seconds since the epoch of an ISO 8601 string (Label Studio's timestamps), or -inf."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass
    return float("-inf")
