"""The api Lambda function: API Gateway HTTP API events → the FastAPI app, through Mangum.

Importing this module builds the app but reads no setting, opens no store and imports no
scikit-learn: a cold /health or /setup pays for FastAPI and Mangum only.
"""

from __future__ import annotations

from typing import Any

from mangum import Mangum

from functions.api.app import create_app
from functions.logs import configure_logging

app = create_app()
_asgi = Mangum(app, lifespan="off")  # "auto" would run startup/shutdown on every invocation


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """API Gateway HTTP API (payload 2.0) event → the app's HTTP response dict."""
    configure_logging(app.state.services.settings.log_level)
    return _asgi(event, context)
