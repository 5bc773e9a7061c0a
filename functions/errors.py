"""Domain errors. The API maps them to HTTP statuses in one place (`functions.api.errors`)."""

from __future__ import annotations


class BackendError(Exception):
    """Base of every error this package raises on purpose; `str(error)` is safe to show a client."""

    status_code = 500


class InvalidRequest(BackendError):
    """The request is well-formed JSON but cannot be served as sent (e.g. a bad project id)."""

    status_code = 422


class UnsupportedLabelConfig(InvalidRequest):
    """The label config has no control this backend can predict or train."""


class NotFound(BackendError):
    """A project, job or version the client named does not exist."""

    status_code = 404


class StoreUnavailable(BackendError):
    """The model store could not be reached or answered with a server error (transient)."""

    status_code = 503


class StoreNotWritable(StoreUnavailable):
    """The model store refuses writes: read-only, full, or access denied (503; nothing stored is lost)."""


class CorruptObject(BackendError):
    """A store object is not what it should be (truncated, garbage JSON, wrong shape); callers
    log and skip it rather than answer 500 for every later request."""

    status_code = 500


class SigningUnavailable(BackendError):
    """Model versions can be neither signed nor verified: no key configured for this store,
    or the key service (KMS) cannot be reached."""

    status_code = 503


class CredentialsUnavailable(BackendError):
    """The credentials secret (CREDENTIALS_SECRET) cannot be read or does not hold the expected
    JSON: the API refuses to serve rather than serve without them (transient or a set-up error)."""

    status_code = 503


class QueueUnavailable(BackendError):
    """The training queue could not be reached (transient)."""

    status_code = 503


class PreconditionFailed(BackendError):
    """A conditional write lost a race: the object changed (or appeared) since it was read."""

    status_code = 409


class CorruptModel(BackendError):
    """A stored model does not match the checksum in its manifest."""

    status_code = 500


class ArtifactMismatch(BackendError):
    """A fitted model cannot be turned into a compact serving model that predicts the same:
    the version is not published. Retrying will not help."""

    status_code = 500


class TrainingDataError(BackendError):
    """The job's data cannot train a model (e.g. fewer than 2 labels). Retrying will not help.

    `report` carries the training counts gathered before the failure, when there are any.
    """

    status_code = 422

    def __init__(self, message: str, report: dict | None = None) -> None:
        super().__init__(message)
        self.report = report


class PayloadTooLarge(BackendError):
    """The request carries more than a documented limit allows (tasks per request, body size)."""

    status_code = 413
