"""What the commands share: user-fixable errors, the settings and store, argument checks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from functions.errors import InvalidRequest
from functions.ids import checked_project_id
from functions.label_config import LabelConfig, parse_label_config


class CliError(Exception):
    """A problem the user can fix: printed as ``error: <message>``, exit status 1."""


def settings_and_store(args: argparse.Namespace) -> tuple[Any, Any]:
    """The backend's settings (environment, `--store` overriding MODEL_STORE_URI) and the store.

    Raises:
        CliError: invalid settings or an unknown store URI.
    """
    from pydantic import ValidationError

    from functions.settings import Settings, describe_settings_error
    from functions.store import open_store

    try:
        settings = Settings(**({"model_store_uri": args.store} if args.store else {}))
    except ValidationError as error:
        raise CliError(f"invalid settings in the environment: {describe_settings_error(error)}") from None
    try:
        store = open_store(settings.model_store_uri, settings)
    except ValueError as error:
        raise CliError(str(error)) from None
    return settings, store


def project_arg(value: str) -> str:
    """`--project` as the store's project id (raises CliError if it is not one)."""
    try:
        return checked_project_id(str(value).strip())
    except InvalidRequest as error:
        raise CliError(f"--project: {error}") from None


def read_label_config(path: Path) -> tuple[str, LabelConfig]:
    """The XML of `path` and its parsed config (raises CliError or UnsupportedLabelConfig)."""
    try:
        xml = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read the label config {path}: {getattr(error, 'strerror', None) or error}") from None
    config = parse_label_config(xml)  # UnsupportedLabelConfig is a BackendError with a message to show
    config.require_controls()
    return xml, config


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """--store, --quiet and --verbose, which every command takes."""
    parser.add_argument("--store", metavar="URI", help="model store URI (default: MODEL_STORE_URI, else file://.model-store)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary on stderr")
    parser.add_argument("--verbose", "-v", action="store_true", help="log what the backend does (INFO) on stderr")
