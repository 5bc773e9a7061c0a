"""Label Studio 1.23's ML-backend requests and replies, as measured (see shared/ls_contract.md).

Every model accepts unknown fields: Label Studio adds fields between releases.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class SetupRequest(_Wire):
    """``POST /setup``: the label config arrives as ``schema``."""

    project: Any = Field(description='"<id>.<created_ts>", checked by functions.ids.project_id')
    label_config: str | None = Field(None, alias="schema")
    extra_params: Any = Field(None, description='the connection\'s "Extra params" (JSON as typed in Label Studio, or null)')


class SetupReply(BaseModel):
    model_version: str


class Task(_Wire):
    """A task as /predict sends it: ``data`` holds the text under the config's data key."""

    id: int | str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class PredictRequest(_Wire):
    """``POST /predict``: ``{"tasks": [...], "project": "12.1732880000", "label_config", "params"}``."""

    tasks: list[Task]
    project: Any = Field(description='"<id>.<created_ts>", checked by functions.ids.project_id')
    label_config: str


class PredictReply(BaseModel):
    """One item per task, in task order, or none at all (no model yet). A task without text
    gets ``[]`` (Label Studio 1.23.2 then leaves it unpredicted and stores the others)."""

    results: list[dict[str, Any] | list[Any]]
    model_version: str


class WebhookRequest(_Wire):
    """``POST /webhook``: ``project`` is an object here; ANNOTATIONS_DELETED has ``annotations``."""

    action: str
    project: dict[str, Any] | int | str | None = None
    annotation: dict[str, Any] | None = None
    annotations: list[Any] | None = None
    task: dict[str, Any] | None = None


class TrainRequest(_Wire):
    """``POST /train`` (Label Studio < 1.12, or the training-webhook flag off)."""

    annotations: list[dict[str, Any]]
    project: Any = Field(description='"<id>.<created_ts>", checked by functions.ids.project_id')
    label_config: str


class JobReply(BaseModel):
    """Reply to a training request; Label Studio keeps ``job``."""

    status: str = "ok"
    job: str
    status_url: str


class VersionsReply(BaseModel):
    """Label Studio reads ``versions``; ``details`` (manifests) only with ``?project=``."""

    versions: list[str]
    details: list[dict[str, Any]] | None = None
