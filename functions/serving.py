"""Serve predictions: find a project's serving version, keep fitted models in memory, predict.

The serving version is read from ``latest.json`` at most every POINTER_TTL_SECONDS per
project, so a running API picks up a newly published version within seconds, with no restart.
Models are the compact ones of `functions.model.compact` (NumPy, loaded on first use); the
API never imports scikit-learn. /setup needs the pointer and the version's signed manifest.

Whole after any fault:

- A version that fails verification (unsigned, forged or garbage manifest; a model or labels
  that do not match their checksum; an unreadable model) is never served: it is logged once,
  remembered as bad for the life of the process, and the newest good version below it
  serves instead. /setup reports that version, so predictions and /setup agree. (A model
  file that fails its checksum is found by its first load, i.e. the first /predict; /setup
  verifies only the manifest, as it must not load a model.)
- A garbage ``latest.json`` is logged and the newest complete version serves.
- While the store (or KMS) is unreachable, the version already resolved and the model
  already loaded keep serving; /setup waits at most `REFRESH_WAIT` seconds for a pointer
  refresh when it has one in memory. With nothing in memory the error (503) propagates,
  after at most `FIRST_READ_WAIT` seconds for a hung store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Mapping, Sequence

from functions import pins, signing, versions
from functions.errors import CorruptModel, CorruptObject, NotFound, PreconditionFailed, SigningUnavailable, StoreUnavailable
from functions.label_config import ChoicesControl, LabelConfig
from functions.settings import Settings
from functions.store import ObjectStore

log = logging.getLogger(__name__)

UNTRAINED = "untrained"
COLD_START = "cold-start"
CORRUPT = "corrupt-pointer"  # cached in place of a Pointer when latest.json is garbage
REFRESH_WAIT = 1.0  # seconds a request waits for a pointer refresh when a pointer is cached
FIRST_READ_WAIT = 2.0  # ... and for the first read (then 503), inside Label Studio's 3 s for /setup
TRANSIENT = (StoreUnavailable, SigningUnavailable)


class ModelCache:
    """Per-process cache of serving pointers (TTL), resolved versions, bad versions and
    loaded models (LRU). Thread-safe."""

    def __init__(self, store: ObjectStore, settings: Settings, signer: signing.Signer | None = None) -> None:
        self.store, self.settings = store, settings
        self.signer = signer or signing.signer_for(store, settings)
        self._pointers: dict[str, tuple[float, Any]] = {}  # project -> (read at, Pointer | None | CORRUPT)
        self._pins: dict[str, pins.Pin] = {}  # project -> its pin, read with the pointer
        self._refreshing: dict[str, Future] = {}
        self._resolved: dict[str, tuple[Any, str | None]] = {}  # project -> (pointer, version served)
        self._manifests: dict[tuple[str, str], dict[str, Any]] = {}  # verified manifests
        self._bad: dict[tuple[str, str], str] = {}  # versions that failed verification -> why
        self._served: dict[str, str] = {}  # project -> version of the model last served
        self._models: OrderedDict[tuple[str, str], versions.StoredModel] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pointer")

    def serving_version(self, project: str) -> str:
        """The version /setup reports and predictions carry: the newest good version at or
        below the pointer (``p<id>-v<n>``), else ``cold-start`` (COLD_START on) or
        ``untrained``. Raises StoreUnavailable / SigningUnavailable only with nothing in memory."""
        version = self.resolve(project)
        if version:
            return version
        return COLD_START if self.settings.cold_start else UNTRAINED

    def pointer(self, project: str) -> Any:
        """The project's pointer (`versions.Pointer`, None, or `CORRUPT`), read from the store
        at most every POINTER_TTL_SECONDS. When the store fails and a pointer is cached, the
        cached one is kept (and trusted for another TTL); otherwise the error propagates."""
        started = time.monotonic()
        cached = self._pointers.get(project)
        if cached and started - cached[0] < self.settings.pointer_ttl_seconds:
            return cached[1]
        deadline = started + (REFRESH_WAIT if cached else FIRST_READ_WAIT)
        retried = False
        while True:
            with self._lock:
                future = self._refreshing.get(project)
                if future is not None and cached is not None:  # another request is waiting for the store already
                    return cached[1]
                joined = future is not None
                if future is None:
                    future = self._refreshing[project] = self._pool.submit(self._refresh_pointer, project)
            try:
                return future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                if cached is None:
                    raise StoreUnavailable(f"model store: no answer within {FIRST_READ_WAIT:g} s (reading the pointer of project {project})") from None
                log.warning("project %s: the store is slow to answer; serving the cached pointer", project)
            except TRANSIENT as error:
                # A read started before this request (e.g. while the store hung) may fail just as
                # the store recovers: read once more ourselves while the budget lasts.
                if joined and not retried and cached is None and time.monotonic() < deadline:
                    retried = True
                    continue
                if cached is None:
                    raise
                log.warning("project %s: %s; serving the cached pointer", project, error)
            return cached[1]

    def _refresh_pointer(self, project: str) -> Any:
        """Read the pointer and the pin and cache them; on a store failure keep the cached ones for
        a TTL and re-raise."""
        try:
            try:
                pointer: Any = versions.read_pointer(self.store, project)
            except CorruptObject as error:
                log.warning("project %s: %s; serving the newest complete version", project, error)
                pointer = CORRUPT
            self._pins[project] = pins.read_pin(self.store, project)
            self._forget_if_replaced(project, pointer)
            self._pointers[project] = (time.monotonic(), pointer)
            return pointer
        except TRANSIENT:
            cached = self._pointers.get(project)
            if cached is not None:
                self._pointers[project] = (time.monotonic(), cached[1])
            raise
        finally:
            with self._lock:
                self._refreshing.pop(project, None)

    def _forget_if_replaced(self, project: str, pointer: Any) -> None:
        """Drop every version of `project` this process holds (manifests, models, bad marks) when
        the store's versions are no longer the ones it knew: the project's data was deleted (no
        pointer any more, or one that moved backwards, which a pointer never does otherwise) or
        re-created (the pointer's version was made by another job than the manifest held here)."""
        cached = self._pointers.get(project)
        before = cached[1] if cached else None
        replaced = before not in (None, CORRUPT) and (pointer is None or (pointer is not CORRUPT and pointer.number < before.number))
        if pointer not in (None, CORRUPT) and pointer.job_id:
            held = self._manifests.get((project, pointer.version))
            replaced = replaced or (held is not None and held.get("job_id") not in (None, pointer.job_id))
        if not replaced:
            return
        log.warning("project %s: its stored versions were replaced (data deleted or re-created): forgetting those in memory", project)
        with self._lock:
            for cache in (self._manifests, self._bad, self._models):
                for key in [key for key in cache if key[0] == project]:
                    del cache[key]
            self._resolved.pop(project, None)
            self._served.pop(project, None)

    def pin(self, project: str) -> pins.Pin:
        """The project's pin as last read with its pointer (see `pointer` for freshness and errors)."""
        self.pointer(project)
        return self._pins.get(project, pins.UNPINNED)

    def forget(self, project: str) -> None:
        """Drop what is cached of the project's pointer and pin: the next request reads them (after
        this process changed the pin; other processes see it within POINTER_TTL_SECONDS)."""
        with self._lock:
            self._pointers.pop(project, None)
            self._resolved.pop(project, None)

    def resolve(self, project: str) -> str | None:
        """The version to serve: the pinned one if the project is pinned and it is a complete
        version at or below the pointer that verifies; else the pointer's own if it verifies,
        else the newest good complete version below it; None if none (or no pointer).
        Remembered per pointer and pin."""
        pointer = self.pointer(project)
        if pointer is None:
            return None
        pinned = self._pins.get(project, pins.UNPINNED).version
        resolved = self._resolved.get(project)
        if resolved and resolved[0] == (pointer, pinned) and (resolved[1] is None or (project, resolved[1]) not in self._bad):
            return resolved[1]
        try:
            version = (pinned if pinned and self._pin_serves(project, pointer, pinned) else None) or self._first_good(project, pointer)
        except TRANSIENT as error:
            if resolved is None:
                raise
            log.warning("project %s: %s; still serving %s", project, error, resolved[1])
            return resolved[1]
        self._resolved[project] = ((pointer, pinned), version)
        return version

    def _pin_serves(self, project: str, pointer: Any, pinned: str) -> bool:
        """True if the pinned version can serve; else logs why (the newest good version serves)."""
        try:
            self.check_pinnable(project, pinned, pointer, load=False)  # /setup loads no model
            return True
        except (NotFound, PreconditionFailed) as error:
            log.error("project %s: pinned to %s, which cannot serve (%s); serving the newest good version", project, pinned, error)
            return False

    def check_pinnable(self, project: str, version: str, pointer: Any = None, load: bool = True) -> None:
        """Raise unless `version` may be pinned: a complete version of the project at or below its
        pointer (what GET /versions lists) whose manifest verifies and, with `load`, whose model
        loads (its files match their checksums).

        Raises:
            NotFound: no such published version (names the versions there are).
            PreconditionFailed: it fails verification (unsigned, forged, garbage), with the reason.
            StoreUnavailable, SigningUnavailable: the store or KMS cannot answer.
        """
        if pointer is None:
            pointer = self.pointer(project)
        up_to = None if pointer is CORRUPT or pointer is None else pointer.number
        published = versions.complete_versions(self.store, project, up_to) if pointer is not None else []
        if version not in published:
            listed = ", ".join(published[-10:]) or "none yet"
            raise NotFound(f"{version} is not a published version of project {project} (published: {listed})")
        if (project, version) in self._bad or not self._verifies(project, version):
            raise PreconditionFailed(f"{version} cannot serve: {self._bad.get((project, version), 'it failed verification')}")
        if load:
            try:
                self.model(project, version)
            except CorruptModel as error:
                self.mark_bad(project, version, str(error))
                raise PreconditionFailed(f"{version} cannot serve: {error}") from None

    def _first_good(self, project: str, pointer: Any) -> str | None:
        """Walk from the pointer's version back through complete versions; the first whose
        manifest verifies. Versions found bad are remembered and never read again."""
        if pointer is not CORRUPT and (project, pointer.version) not in self._bad:
            if self._verifies(project, pointer.version):
                return pointer.version
        up_to = None if pointer is CORRUPT else pointer.number
        for version in reversed(versions.complete_versions(self.store, project, up_to)):
            if (project, version) not in self._bad and self._verifies(project, version):
                log.warning("project %s: serving %s, the newest good version", project, version)
                return version
        return None

    def _verifies(self, project: str, version: str) -> bool:
        """True if the version's manifest is verified (cached); marks it bad otherwise."""
        if (project, version) in self._manifests:
            return True
        try:
            self._manifests[(project, version)] = versions.verified_manifest(self.store, project, version, self.signer)
            return True
        except CorruptModel as error:
            self.mark_bad(project, version, str(error))
            return False

    def mark_bad(self, project: str, version: str, reason: str) -> None:
        """Never serve `version` again in this process (logged once, at ERROR)."""
        if (project, version) not in self._bad:
            log.error("project %s: %s is not served: %s", project, version, reason)
            self._bad[(project, version)] = reason
            self._manifests.pop((project, version), None)

    def serving_model(self, project: str, config: LabelConfig) -> versions.StoredModel | None:
        """The model that answers /predict for `project`: the resolved version, loaded (a
        version whose load fails verification is marked bad and the next good one loads),
        else the cold-start model of `config` (COLD_START on), else None. While the store is
        unreachable, the model last served for the project answers."""
        for _ in range(1000):  # each turn marks one more version bad
            try:
                version = self.resolve(project)
                if version is None:
                    return self.cold_start_model(config) if self.settings.cold_start else None
                loaded = self.model(project, version)
            except CorruptModel as error:
                self.mark_bad(project, version, str(error))
                continue
            except TRANSIENT as error:
                fallback = self._models.get((project, self._served.get(project, "")))
                if fallback is None:
                    raise
                log.warning("project %s: %s; still serving %s", project, error, fallback.version)
                return fallback
            self._served[project] = version
            return loaded
        raise CorruptModel(f"project {project}: no version could be verified")

    def in_memory(self, project: str) -> bool:
        """True if `serving_model` (and `serving_version`) can answer without touching the
        store: the pointer is fresh, resolved, and its version is loaded (or there is none)."""
        cached = self._pointers.get(project)
        if not cached or time.monotonic() - cached[0] >= self.settings.pointer_ttl_seconds:
            return False
        if cached[1] is None:
            return True
        resolved = self._resolved.get(project)
        if not resolved or resolved[0] != (cached[1], self._pins.get(project, pins.UNPINNED).version):
            return False
        return resolved[1] is None or (project, resolved[1]) in self._models

    def model(self, project: str, version: str) -> versions.StoredModel:
        """The loaded version (from memory, else from the store; one load per version at a
        time). Raises CorruptModel (see `versions.load`), StoreUnavailable, SigningUnavailable."""
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
            manifest = self._manifests.get(key)
            loaded = versions.load(self.store, project, version, self.signer, manifest)
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
            model = label_name_model(control.labels, self.settings.cold_start_c())
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
