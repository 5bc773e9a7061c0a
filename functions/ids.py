"""Project and job identifiers, validated before they become parts of store keys."""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from functions.errors import InvalidRequest, NotFound

_PROJECT_ID = re.compile(r"^[0-9]{1,18}$")
_PROJECT_REF = re.compile(r"^([0-9]{1,18})(?:\.[0-9]+)?$")
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


def project_id(ref: Any) -> str:
    """The store's project id (decimal digits) from any form Label Studio sends.

    Label Studio 1.23 sends ``"<id>.<created_ts>"`` (e.g. ``"12.1732880000"``) in /setup,
    /predict and /train, and an object ``{"id": 12, ...}`` in /webhook. The timestamp part is
    dropped so that both forms name the same project.

    Raises:
        InvalidRequest: the value is missing or not one of those forms.
    """
    if isinstance(ref, dict):
        ref = ref.get("id")
    if isinstance(ref, bool):
        ref = None
    if isinstance(ref, int) and ref >= 0:
        ref = str(ref)
    if isinstance(ref, str):
        match = _PROJECT_REF.fullmatch(ref.strip())
        if match:
            return str(int(match.group(1)))
    raise InvalidRequest(
        f"project must be a Label Studio project id such as 12 or '12.1732880000', got {preview(ref)}"
    )


def checked_project_id(value: str) -> str:
    """`value` if it is a bare project id (digits), for ids taken from URLs and query strings."""
    if not _PROJECT_ID.fullmatch(value):
        raise InvalidRequest(f"project must be a number such as 12, got {preview(value)}")
    return str(int(value))


def new_job_id() -> str:
    """A fresh training job id: 32 lower-case hex digits, the first 12 the time in ms, so ids sort by age."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def checked_job_id(value: str, what: str = "training job") -> str:
    """`value` if it has the shape of a job (or run: `what`) id, else NotFound (a malformed id names none)."""
    if not _JOB_ID.fullmatch(value):
        raise NotFound(f"no {what} {preview(value)}: {what} ids are 32 hex digits")
    return value


def preview(value: Any) -> str:
    """A short repr of a client's value for an error message."""
    if isinstance(value, int) and value.bit_length() > 100:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
