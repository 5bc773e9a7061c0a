"""Serve predictions: find a project's serving version, keep fitted models in memory, predict.

The serving version is read from ``latest.json`` at most every POINTER_TTL_SECONDS per
project, so a running API picks up a newly published version within seconds, with no restart.
Models are the compact ones of `functions.model.compact` (NumPy, loaded on first use); the
API never imports scikit-learn. /setup needs the pointer alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Mapping, Sequence

from functions import versions
from functions.label_config import ChoicesControl, LabelConfig
from functions.settings import Settings
from functions.store import ObjectStore

log = logging.getLogger(__name__)

UNTRAINED = "untrained"
COLD_START = "cold-start"


class ModelCache:
    """Per-process cache of serving pointers (TTL) and loaded models (LRU). Thread-safe."""

    def __init__(self, store: ObjectStore, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self._pointers: dict[str, tuple[float, versions.Pointer | None]] = {}
        self._models: OrderedDict[tuple[str, str], versions.StoredModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}

    def serving_version(self, project: str) -> str:
        """The version /setup reports and predictions carry: ``p<id>-v<n>``, else
        ``cold-start`` (COLD_START on) or ``untrained``."""
        pointer = self.pointer(project)
        if pointer:
            return pointer.version
        return COLD_START if self.settings.cold_start else UNTRAINED

    def pointer(self, project: str) -> versions.Pointer | None:
        """The project's serving pointer, read from the store at most every POINTER_TTL_SECONDS."""
        now = time.monotonic()
        cached = self._pointers.get(project)
        if cached and now - cached[0] < self.settings.pointer_ttl_seconds:
            return cached[1]
        pointer = versions.read_pointer(self.store, project)
        self._pointers[project] = (now, pointer)
        return pointer

    def serving_model(self, project: str, config: LabelConfig) -> versions.StoredModel | None:
        """The model that answers /predict for `project`: its serving version, else the
        cold-start model of `config` (COLD_START on), else None."""
        pointer = self.pointer(project)
        if pointer is not None:
            return self.model(project, pointer.version)
        return self.cold_start_model(config) if self.settings.cold_start else None

    def in_memory(self, project: str) -> bool:
        """True if `serving_model` (and `serving_version`) can answer without touching the
        store: the pointer is fresh and its version is loaded (or there is none)."""
        cached = self._pointers.get(project)
        if not cached or time.monotonic() - cached[0] >= self.settings.pointer_ttl_seconds:
            return False
        pointer = cached[1]
        return pointer is None or (project, pointer.version) in self._models

    def model(self, project: str, version: str) -> versions.StoredModel:
        """The loaded version (from memory, else from the store; one load per version at a time)."""
        key = (project, version)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            with self._lock:
                if key in self._models:
                    return self._models[key]
            started = time.monotonic()
            loaded = versions.load(self.store, project, version)
            log.info("project %s: loaded %s in %.3f s", project, version, time.monotonic() - started)
            with self._lock:
                self._remember(key, loaded)
                self._loading.pop(key, None)
        return loaded

    def cold_start_model(self, config: LabelConfig) -> versions.StoredModel | None:
        """A model fitted on the label names of `config` (COLD_START), cached per config; None
        if no control's label names hold a word to learn from."""
        key = ("cold-start", repr(config.controls))
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        from functions.model.cold_start import label_name_model

        models, labels = {}, {}
        for control in config.controls:
            model = label_name_model(control.labels, self.settings.lr_c)
            if model is not None:
                models[control.name], labels[control.name] = model, list(control.labels)
        if not models:
            return None
        loaded = versions.StoredModel(COLD_START, models, labels, {})
        with self._lock:
            self._remember(key, loaded)
        return loaded

    def _remember(self, key: tuple[str, str], loaded: versions.StoredModel) -> None:
        self._models[key] = loaded
        while len(self._models) > self.settings.model_cache_size:
            self._models.popitem(last=False)


def predict_tasks(
    tasks: Sequence[Mapping[str, Any]], config: LabelConfig, model: versions.StoredModel, threshold: float = 0.5
) -> list[dict[str, Any]]:
    """Label Studio prediction items for `tasks`, one per task, in order; [] if `model` has
    nothing to say about this config (no control it was trained for, or fewer than 2 of its
    labels left in the config).

    Each item is ``{"result": [one choices result per control], "score": float, "model_version"}``.
    Labels the current config lacks are never predicted. Scores follow `functions.model.decisions`
    (single choice: the label's probability among the labels still in the config; multiple
    choice: the lowest probability among the listed labels, `threshold` deciding which are
    listed). With several controls the task's score is the lowest of theirs (the least sure
    decision). Tasks without text for any control get ``"result": []`` and score 0.0.
    """
    per_control = [
        outcome
        for control in config.controls
        if (outcome := _predict_control(tasks, control, model, threshold)) is not None
    ]
    if not per_control:
        return []
    items = []
    for index in range(len(tasks)):
        results = [outcome[index] for outcome in per_control if outcome[index] is not None]
        items.append(
            {
                "result": [result for result, _ in results],
                "score": min((score for _, score in results), default=0.0),
                "model_version": model.version,
            }
        )
    return items


def _predict_control(
    tasks: Sequence[Mapping[str, Any]], control: ChoicesControl, model: versions.StoredModel, threshold: float
) -> list[tuple[dict[str, Any], float] | None] | None:
    pipeline = model.models.get(control.name)
    classes = model.labels.get(control.name, [])
    allowed = [i for i, label in enumerate(classes) if label in control.labels]
    if pipeline is None or len(allowed) < 2:
        return None
    texts = [_text(task, control.data_key) for task in tasks]
    present = [i for i, text in enumerate(texts) if text is not None]
    outcome: list[tuple[dict[str, Any], float] | None] = [None] * len(tasks)
    if not present:
        return outcome
    from functions.model.decisions import decide  # NumPy: not on the /health and /setup path

    probabilities = pipeline.predict_proba([texts[i] for i in present])[:, allowed]
    if not model.manifest.get("controls", {}).get(control.name, {}).get("multiple", False):
        probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)  # among the labels left
    for index, (columns, score) in zip(present, decide(probabilities, control.multiple, threshold)):
        result = {
            "from_name": control.name,
            "to_name": control.to_name,
            "type": "choices",
            "value": {"choices": [classes[allowed[column]] for column in columns]},
        }
        outcome[index] = (result, score)
    return outcome


def _text(task: Mapping[str, Any], key: str) -> str | None:
    data = task.get("data")
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, str) and value.strip() else None
