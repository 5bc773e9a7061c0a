"""Pins: serve a chosen version of a project instead of its newest (roll back, or hold one).

One object per project, ``projects/<id>/serving.json``::

    {"version": "p12-v3" | null, "source": "label_studio" | "operator" | null,
     "extra_params_version": "p12-v3" | null, "since": "2026-12-03T10:00:00+00:00"}

Two hands set it, and the last change wins:

- Label Studio: the connection's "Extra params" (Settings → Model → edit), sent in every
  ``/setup`` as ``extra_params`` (Label Studio 1.23.2, ``ml/api_connector.py``). A
  ``{"model_version": "p12-v3"}`` there pins the project when it first arrives; removing it
  unpins what it pinned. ``extra_params_version`` remembers the value last seen, so the pin is
  written only when the Extra params change, not on every /setup.
- Operators: ``PUT/DELETE /projects/{id}/serving`` and ``python -m functions.cli serving``.
  An operator's unpin is not undone by Extra params that still name the version (they have
  not changed); editing them again pins again.

Trainings still publish while a pin holds; the pin decides what /setup reports and /predict
serves (`functions.serving.ModelCache`). The api function may write this object and no model.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from typing import Any, Callable

from functions import keys, versions
from functions.errors import InvalidRequest, NotFound, PreconditionFailed
from functions.store import ObjectStore, StoredObject

log = logging.getLogger(__name__)

FROM_LABEL_STUDIO, FROM_OPERATOR = "label_studio", "operator"


@dataclass(frozen=True)
class Pin:
    """A project's pin; ``version`` None means not pinned (the newest good version serves)."""

    version: str | None = None
    source: str | None = None
    extra_params_version: str | None = None
    since: str | None = None

    def summary(self) -> dict[str, Any] | None:
        """``{"version", "source", "since"}`` while pinned, else None (what status replies show)."""
        return {"version": self.version, "source": self.source, "since": self.since} if self.version else None


UNPINNED = Pin()


def read_pin(store: ObjectStore, project: str) -> Pin:
    """The project's pin (UNPINNED when there is none). A garbage object is logged and read as
    UNPINNED: it must never stop serving. Raises StoreUnavailable."""
    return _parse(store.get(keys.serving_pin(project)), project)


def _parse(found: StoredObject | None, project: str) -> Pin:
    if found is None:
        return UNPINNED
    try:
        body = found.json()
        pin = Pin(**{name: body.get(name) for name in ("version", "source", "extra_params_version", "since")})
        for value in asdict(pin).values():
            if value is not None and not isinstance(value, str):
                raise TypeError(value)
    except (ValueError, RecursionError, TypeError, AttributeError):
        log.warning("project %s: %s is not a pin (%d bytes); serving the newest version", project, keys.serving_pin(project), len(found.data))
        return UNPINNED
    return pin


def update_pin(store: ObjectStore, project: str, change: Callable[[Pin], Pin | None]) -> Pin:
    """Apply `change` to the stored pin, read fresh, and write the result conditionally (another
    API instance may change the pin at the same time: then it is read again and `change` applied
    to what that one wrote). `change` returns None for "nothing to write". ``since`` is set to now
    when the pinned version changes. Returns the pin as stored.

    Raises StoreUnavailable / StoreNotWritable, PreconditionFailed (the pin kept changing), and
    whatever `change` raises."""
    key = keys.serving_pin(project)
    for _ in range(10):
        found = store.get(key)
        current = _parse(found, project)
        changed = change(current)
        if changed is None:
            return current
        if changed.version != current.version or changed.since is None:
            changed = replace(changed, since=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        try:
            if found is None:
                store.put_json(key, asdict(changed), if_none_match=True)
            else:
                store.put_json(key, asdict(changed), if_match=found.etag)
            return changed
        except PreconditionFailed:
            continue
    raise PreconditionFailed(f"the pin of project {project} kept changing while it was written; try again")


def requested_version(extra_params: Any, project: str) -> str | None:
    """The version the connection's Extra params ask for, or None if they ask for none.

    Label Studio sends the Extra params JSON as it was typed: usually an object, null when empty.
    ``{"model_version": "p12-v3"}`` and ``{"model_version": 3}`` both mean ``p12-v3``; a JSON
    string holding such an object is read too. Other keys are ignored.

    Raises:
        InvalidRequest: ``model_version`` is neither a version of this project nor a number.
    """
    if isinstance(extra_params, str):
        try:
            extra_params = json.loads(extra_params)
        except (ValueError, RecursionError):
            return None
    if not isinstance(extra_params, dict) or extra_params.get("model_version") in (None, ""):
        return None
    try:
        return version_named(extra_params["model_version"], project)
    except InvalidRequest as error:
        raise InvalidRequest(f"Extra params: model_version {error}; or remove it to serve the newest") from None


def version_named(value: Any, project: str) -> str:
    """``p12-v3`` for ``"p12-v3"``, ``3`` or ``"3"`` (project 12; ASCII digits only).

    Raises:
        InvalidRequest: `value` is neither a version name of this project nor a positive number.
    """
    if isinstance(value, str) and re.fullmatch(r"[0-9]{1,20}", value.strip()):
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return versions.version_name(project, value)
    if isinstance(value, str) and (number := versions.version_number(value.strip())) is not None:
        if versions.version_name(project, number) == value.strip():
            return value.strip()
    raise InvalidRequest(
        f"{_shown(value)} is not a model version of project {project}: "
        f'give one GET /versions?project={project} lists, e.g. "p{project}-v3" (or its number, 3)'
    )


def after_setup(pin: Pin, requested: str | None) -> Pin | None:
    """The pin a /setup whose Extra params ask for `requested` leads to, or None when nothing
    changes (the Extra params are the ones seen last)."""
    if requested == pin.extra_params_version:
        return None
    if requested is not None:
        return Pin(requested, FROM_LABEL_STUDIO, requested, pin.since if pin.version == requested else None)
    if pin.source == FROM_LABEL_STUDIO:
        return Pin(None, None, None)  # the Extra params that pinned it are gone: unpin
    return replace(pin, extra_params_version=None)


def pinned_by_operator(pin: Pin, version: str | None) -> Pin | None:
    """`pin` after an operator pins `version` (None: unpins), keeping what Label Studio sent last;
    None when it is so already."""
    if version is None and pin.version is None:
        return None
    return Pin(version, FROM_OPERATOR if version else None, pin.extra_params_version)


def follow_extra_params(cache: Any, project: str, extra_params: Any) -> None:
    """Apply a /setup's Extra params to the project's pin (a store write only when they changed).

    `cache` is the app's `functions.serving.ModelCache` (it reads the pin with the pointer and
    checks the version). Raises InvalidRequest when they name a version that cannot serve (Label
    Studio shows the detail on the model page), StoreUnavailable / StoreNotWritable.
    """
    requested = requested_version(extra_params, project)
    if after_setup(cache.pin(project), requested) is None:
        return
    if requested is not None:
        try:
            cache.check_pinnable(project, requested)
        except (NotFound, PreconditionFailed) as error:
            raise InvalidRequest(f"Extra params: {error}; fix model_version in the connection's Extra params, or remove it") from None
    before = cache.pin(project)
    stored = update_pin(cache.store, project, lambda current: after_setup(current, requested))
    cache.forget(project)
    if stored.version != before.version:
        log.info("project %s: %s by the connection's Extra params", project, f"pinned to {stored.version}" if stored.version else "unpinned")


def pin_by_operator(cache: Any, project: str, version: str | None) -> Pin:
    """Pin `project` to `version` (None: unpin, the newest good version serves); returns the pin.

    Raises NotFound / PreconditionFailed (see `ModelCache.check_pinnable`), StoreUnavailable,
    StoreNotWritable."""
    if version is not None:
        cache.check_pinnable(project, version)
    pin = update_pin(cache.store, project, lambda current: pinned_by_operator(current, version))
    cache.forget(project)
    log.info("project %s: %s by an operator", project, f"pinned to {version}" if version else "unpinned")
    return pin


def _shown(value: Any) -> str:
    """A short, safe rendering of a user's value for an error detail."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return json.dumps(value)[:80]
    return f"a JSON {'object' if isinstance(value, dict) else 'array' if isinstance(value, list) else type(value).__name__}"
