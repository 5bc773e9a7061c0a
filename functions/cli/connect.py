"""`connect`: connect a Label Studio 1.23 project to this backend, in one command.

    python -m functions.cli connect --label-studio-url http://localhost:8080 --project 12 \\
        --backend-url http://localhost:9090

It checks the backend first (``/health``, and ``/setup`` with the Basic credentials), and changes
nothing in Label Studio if that fails. Then it creates the project's ML backend connection, or
updates the one that calls the same URL (or the only one), with the URL, HTTP Basic auth and a
title; and it gives the project webhook ``<backend>/webhook`` (the one Label Studio made with the
connection, else a new one) the header that lets its events in: ``X-Webhook-Secret`` when the
backend has a webhook secret, else ``Authorization: Basic …``. Without it the annotation log stays
empty (shared/ls_contract.md, "Transport"). Finally it verifies: Label Studio's own view of the
connection (it calls /health and /setup with what it stored), a test webhook sent with the
headers Label Studio now holds, and what the backend knows of the project. Exit 0 only if every
check passed. Re-running it updates the same connection and webhook and creates nothing.

Label Studio 1.23.2's admin API rules are in `functions.label_studio_admin`. No token, password
or webhook secret is ever printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import textwrap
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from functions.backend_checks import BackendProbe, Check
from functions.cli.common import CliError, add_common_options
from functions.cli.connect_inputs import UNSET, Inputs, extra_params_arg, project_arg, read_inputs
from functions.label_studio import LabelStudioRefused, LabelStudioUnreachable
from functions.label_studio_admin import LabelStudioAdmin, LabelStudioBlockedUrl, LabelStudioInvalid, setup_project_ref

DEFAULT_TITLE = "Text classification backend"
AUTH_HEADERS = ("authorization", "x-webhook-secret")  # header names (lower case) this command manages on a webhook
BLOCKED_HINT = (
    "Label Studio refuses to call {url}: it resolves to a loopback or private address. For a backend on this "
    "machine or network, start Label Studio with ML_BLOCK_LOCAL_IP=false (the connection) and "
    "SSRF_PROTECTION_ENABLED=false (its webhook), e.g. `ML_BLOCK_LOCAL_IP=false SSRF_PROTECTION_ENABLED=false "
    "label-studio start`; otherwise give --backend-url an address Label Studio may call (the API Gateway URL in AWS). "
    "Then run this command again"
)


class Report:
    """Prints what happened, one line each; remembers whether a check failed."""

    def __init__(self) -> None:
        self.failed = 0

    def check(self, check: Check) -> Check:
        """Print `check` as ``✓ name: detail`` or ``✗ name: detail``; returns it."""
        self.failed += not check.ok
        print(f"{'✓' if check.ok else '✗'} {check.name}: {check.detail}", flush=True)
        return check

    def line(self, text: str) -> None:
        """Print one line of what was done."""
        print(text, flush=True)


def connect_command(args: argparse.Namespace) -> int:
    """Run `connect`; returns the exit status (0: every check passed). User errors raise CliError."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines show URLs, and a webhook URL may hold the secret
    inputs = read_inputs(args)
    admin = LabelStudioAdmin(inputs.label_studio_url, inputs.token)
    probe = BackendProbe(inputs.check_url, inputs.user, inputs.password)
    try:
        return _connect(args, inputs, admin, probe, Report())
    except LabelStudioBlockedUrl:
        raise CliError(BLOCKED_HINT.format(url=inputs.backend_url)) from None
    except (LabelStudioRefused, LabelStudioUnreachable) as error:
        raise CliError(str(error)) from None
    finally:
        admin.close()
        probe.close()


def _connect(args: argparse.Namespace, inputs: Inputs, admin: LabelStudioAdmin, probe: BackendProbe, report: Report) -> int:
    project = admin.project(inputs.project)
    token_kind = "personal access token" if admin.uses_personal_access_token else "legacy token"
    report.line(f"Label Studio {inputs.label_studio_url}, project {inputs.project} {project.get('title')!r} ({token_kind})")
    where = "" if inputs.check_url == inputs.backend_url else f", checked from here at {inputs.check_url}"
    report.line(f"backend {inputs.backend_url} (what Label Studio calls{where}), Basic auth user {inputs.user!r}")
    connection = choose_connection(admin.connections(inputs.project), inputs, args.connection)
    extra_params = args.extra_params if args.extra_params is not UNSET else (connection or {}).get("extra_params")

    setup = None
    if report.check(probe.health()).ok:
        if args.dry_run:
            report.check(probe.credentials(inputs.project))
        else:
            setup = report.check(probe.setup(setup_project_ref(project), str(project.get("label_config") or ""),
                                             inputs.label_studio_url, extra_params))
    if args.dry_run:
        _print_plan(report, inputs, connection, admin.webhooks(inputs.project), args, extra_params)
        return 1 if report.failed else 0
    if report.failed:
        report.line("Label Studio left unchanged: fix what the check above says, then run this command again")
        return 1

    connection = _save_connection(report, admin, inputs, connection, args, extra_params)
    webhooks = _save_webhooks(report, admin, inputs)

    stored = admin.connection(connection["id"])  # Label Studio calls /health and /setup with what it stored
    connected = stored.get("state") == "CO"
    detail = (f"connection {stored['id']} {stored.get('readable_state')}, model_version {stored.get('model_version')}" if connected
              else f"connection {stored['id']} {stored.get('readable_state') or stored.get('state')}"
              f"{': ' + str(stored['error_message'])[:300] if stored.get('error_message') else ''}")
    report.check(Check("Label Studio reaches the backend", connected, detail))
    if connected and setup is not None and stored.get("model_version") != setup.value:
        report.line(f"  note: Label Studio has model_version {stored.get('model_version')}, this command's /setup got {setup.value}")
    for webhook in webhooks:
        held = admin.webhook(webhook["id"])  # the headers exactly as Label Studio holds them
        path = urlsplit(held["url"]).path[len(urlsplit(inputs.backend_url).path):] or "/webhook"
        check = probe.webhook(path, held.get("headers") or {}, inputs.project)
        report.check(Check(f"{check.name} (webhook {held['id']})", check.ok, check.detail))
    report.check(probe.status(inputs.project))
    if report.failed:
        report.line(f"not verified: {report.failed} check(s) failed (see ✗ above)")
        return 1
    ids = ", ".join(str(w["id"]) for w in webhooks)
    report.line(f"connected: project {inputs.project} → {inputs.backend_url} (connection {stored['id']}, webhook {ids})")
    return 0


def choose_connection(connections: list[dict[str, Any]], inputs: Inputs, wanted: int | None) -> dict[str, Any] | None:
    """The connection to update: `wanted` if given, else the one calling the backend's URL, else the
    only one; None to create one. Several and none of them calling the URL: CliError listing them."""
    listed = "; ".join(f"{c.get('id')}: {_shown(str(c.get('url')))} {c.get('title')!r}" for c in connections)
    if wanted is not None:
        for connection in connections:
            if connection.get("id") == wanted:
                return connection
        raise CliError(f"--connection {wanted} is not a connection of project {inputs.project} ({listed or 'it has none'})")
    same = [c for c in connections if _same_url(str(c.get("url") or ""), inputs.backend_url)]
    if len(same) == 1:
        return same[0]
    if len(same) > 1:
        raise CliError(f"project {inputs.project} has {len(same)} connections to {inputs.backend_url} ({listed}): "
                       "pass --connection ID to update one (delete the others in Settings → Model)")
    if len(connections) > 1:
        raise CliError(f"project {inputs.project} has {len(connections)} connections, none to {inputs.backend_url} ({listed}): "
                       "pass --connection ID to update one of them")
    return connections[0] if connections else None


def _save_connection(report: Report, admin: LabelStudioAdmin, inputs: Inputs, connection: dict[str, Any] | None,
                     args: argparse.Namespace, extra_params: Any) -> dict[str, Any]:
    """Create or update the connection; Label Studio validates it by calling /health and /setup."""
    fields: dict[str, Any] = {
        "project": inputs.project, "url": inputs.backend_url, "auth_method": "BASIC_AUTH",
        "basic_auth_user": inputs.user, "basic_auth_pass": inputs.password, "extra_params": extra_params,
    }
    if args.title or connection is None:
        fields["title"] = args.title or DEFAULT_TITLE
    try:
        if connection is None:
            fields["is_interactive"] = False  # text classification: no interactive pre-annotation to ask for
            saved = admin.create_connection(fields)
            report.line(f"connection {saved['id']}: created ({_summary(saved)})")
        else:
            saved = admin.update_connection(connection["id"], fields)
            old = str(connection.get("url"))
            changed = "" if _same_url(old, inputs.backend_url) else f", url was {_shown(old)}"
            report.line(f"connection {saved['id']}: updated ({_summary(saved)}{changed})")
    except LabelStudioBlockedUrl:
        saved_anyway = [c for c in admin.connections(inputs.project) if _same_url(str(c.get("url")), inputs.backend_url)]
        if connection is None and saved_anyway:  # ML_BLOCK_LOCAL_IP=false alone: saved, then its webhook refused
            report.line(f"connection {saved_anyway[0]['id']}: saved by Label Studio, but it refused to create its webhook")
        raise
    except (LabelStudioInvalid, LabelStudioUnreachable) as error:  # Label Studio 1.23.2: 500 "Can't resolve hostname …"
        raise CliError(f"{error}{_invalid_hint(str(error), inputs)}") from None
    return saved


def _save_webhooks(report: Report, admin: LabelStudioAdmin, inputs: Inputs) -> list[dict[str, Any]]:
    """Give every project webhook that calls ``<backend>/webhook`` the credential header (keeping
    its other headers and its actions), or create one for all actions; returns them."""
    ours, others = [], []
    for webhook in admin.webhooks(inputs.project):
        (ours if _is_ours(str(webhook.get("url") or ""), inputs.backend_url) else others).append(webhook)
    kind = "X-Webhook-Secret" if inputs.webhook_auth == "secret" else "Authorization: Basic"
    saved = []
    for webhook in ours:
        headers = _headers_for(webhook, inputs)
        if _sends_them(webhook, headers):
            report.line(f"webhook {webhook['id']} {_shown(webhook['url'])}: unchanged (already sends {kind})")
            saved.append(webhook)
            continue
        fields = {"headers": headers, "is_active": True, "actions": webhook.get("actions") or [],
                  "send_for_all_actions": bool(webhook.get("send_for_all_actions"))}
        saved.append(admin.update_webhook(webhook["id"], fields))
        report.line(f"webhook {webhook['id']} {_shown(webhook['url'])}: headers set ({kind})"
                    + ("" if webhook.get("is_active") else ", activated"))
    if not ours:
        fields = {"project": inputs.project, "url": inputs.backend_url + "/webhook", "send_payload": True,
                  "send_for_all_actions": True, "actions": [], "headers": inputs.webhook_headers, "is_active": True}
        created = admin.create_webhook(fields)
        report.line(f"webhook {created['id']} {_shown(created['url'])}: created for all actions ({kind})")
        saved.append(created)
    for webhook in others:
        if "/webhook" in str(webhook.get("url")):
            report.line(f"  note: webhook {webhook['id']} {_shown(str(webhook['url']))} also gets this project's events; "
                        "left as it is")
    return saved


def _print_plan(report: Report, inputs: Inputs, connection: dict[str, Any] | None, webhooks: list[dict[str, Any]],
                args: argparse.Namespace, extra_params: Any) -> None:
    """The dry run's plan: what `_save_connection` and `_save_webhooks` would do."""
    report.line("dry run: nothing was changed; this would:")
    extra = f", extra_params {json.dumps(extra_params)}"
    if connection is None:
        report.line(f"  create a connection to {inputs.backend_url} (Basic auth, title {(args.title or DEFAULT_TITLE)!r}{extra})")
    else:
        title = f"title {args.title!r}" if args.title else f"title kept {connection.get('title')!r}"
        url = str(connection.get("url"))
        url = inputs.backend_url if _same_url(url, inputs.backend_url) else f"{_shown(url)} → {inputs.backend_url}"
        report.line(f"  update connection {connection['id']} ({url}, Basic auth user {inputs.user!r}, {title}{extra})")
    kind = "X-Webhook-Secret" if inputs.webhook_auth == "secret" else "Authorization: Basic"
    ours = [w for w in webhooks if _is_ours(str(w.get("url") or ""), inputs.backend_url)]
    for webhook in ours:
        if _sends_them(webhook, _headers_for(webhook, inputs)):
            report.line(f"  leave webhook {webhook['id']} {_shown(webhook['url'])} as it is (it already sends {kind})")
        else:
            report.line(f"  set the {kind} header of webhook {webhook['id']} {_shown(webhook['url'])}")
    if not ours:
        made = "use the webhook Label Studio makes with the connection" if connection is None else "create a webhook"
        report.line(f"  {made}: {inputs.backend_url}/webhook, all actions, header {kind}")


def _headers_for(webhook: dict[str, Any], inputs: Inputs) -> dict[str, Any]:
    """The webhook's headers with the credential header set (its other headers kept)."""
    headers = webhook.get("headers") if isinstance(webhook.get("headers"), dict) else {}
    return {k: v for k, v in headers.items() if str(k).lower() not in AUTH_HEADERS} | inputs.webhook_headers


def _sends_them(webhook: dict[str, Any], headers: dict[str, Any]) -> bool:
    """True if the webhook is on and already sends exactly `headers`."""
    return headers == (webhook.get("headers") or {}) and bool(webhook.get("is_active"))


def _same_url(a: str, b: str) -> bool:
    return a.strip().rstrip("/") == b.strip().rstrip("/")


def _is_ours(url: str, backend_url: str) -> bool:
    """A webhook calling this backend's ``/webhook`` (or ``/webhook/<secret>``)."""
    base = backend_url.rstrip("/") + "/webhook"
    url = url.strip()
    return url.rstrip("/") == base or url.startswith(base + "/")


def _shown(url: str) -> str:
    """`url` without user info or a webhook secret in its path."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    path = parts.path
    if "/webhook/" in path:
        path = path[: path.index("/webhook/")] + "/webhook/<secret>"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _summary(connection: dict[str, Any]) -> str:
    extra = connection.get("extra_params")
    return (f"{connection.get('url')}, {connection.get('auth_method')} user {connection.get('basic_auth_user')!r}, "
            f"title {connection.get('title')!r}" + (f", extra_params {json.dumps(extra)}" if extra else ""))


def _invalid_hint(message: str, inputs: Inputs) -> str:
    """What to do about Label Studio's validation error when it saved a connection."""
    if "Can't connect" in message or "Can't resolve hostname" in message:
        return (f". This command reached the backend, Label Studio did not: {inputs.backend_url} must work from where Label "
                "Studio runs (in Docker: http://host.docker.internal:<port>, and HOST=0.0.0.0 for `make dev`)")
    if "401" in message:
        return ". The backend refused the credentials Label Studio sent: are Label Studio and this command using the same backend?"
    return ""


def register(commands: Any) -> None:
    """Add the `connect` sub-command to `commands` (argparse sub-parsers)."""
    parser = commands.add_parser(
        "connect",
        help="connect a Label Studio project to this backend (connection, webhook headers, checks)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="\n\n".join(textwrap.fill(paragraph, 100) for paragraph in (
            "Create or update a Label Studio 1.23 project's ML backend connection (URL, HTTP Basic auth, title), give the "
            "project webhook <backend>/webhook the credential header its events need to reach the annotation log, and verify "
            "it all: the backend's /health and /setup, Label Studio's own view of the connection, a test webhook sent with the "
            "headers Label Studio holds, and GET /projects/<id> on the backend. Nothing in Label Studio changes if the backend "
            "checks fail first. Re-running it updates, it never creates a second connection.",
            "Secrets come from the environment, as the backend reads them: LABEL_STUDIO_API_KEY (or "
            "LABEL_STUDIO_API_KEY_SECRET), BASIC_AUTH_USER, BASIC_AUTH_PASS and WEBHOOK_SECRET, or in AWS CREDENTIALS_SECRET "
            "(--credentials-secret); a password prompt when BASIC_AUTH_PASS is unset. None is ever printed.")),
        epilog="examples:\n"
        "  BASIC_AUTH_USER=labelstudio BASIC_AUTH_PASS=… LABEL_STUDIO_API_KEY=<personal access token> \\\n"
        "    python -m functions.cli connect --label-studio-url http://localhost:8080 --project 12 --backend-url http://localhost:9090\n"
        "  LABEL_STUDIO_API_KEY=… python -m functions.cli connect --label-studio-url https://ls.example.org --project 12 \\\n"
        "    --backend-url https://abc123.execute-api.us-east-1.amazonaws.com --credentials-secret arn:aws:secretsmanager:…\n\n"
        "Exit status: 0 when every check passed, 1 otherwise (✗ lines or `error: …` say what to fix).",
    )
    parser.add_argument("--label-studio-url", metavar="URL", help="Label Studio's URL, path prefix included (default: LABEL_STUDIO_URL)")
    parser.add_argument("--token", help="Label Studio personal access token or legacy token (default: LABEL_STUDIO_API_KEY; "
                        "prefer the variable: a flag shows in the process list)")
    parser.add_argument("--project", required=True, type=project_arg, help="Label Studio project id, e.g. 12")
    parser.add_argument("--backend-url", required=True, metavar="URL",
                        help="the URL Label Studio calls: http://host.docker.internal:9090, the API Gateway URL, …")
    parser.add_argument("--check-url", metavar="URL", help="where this machine reaches the backend, if not at --backend-url "
                        "(e.g. http://localhost:9090 while Label Studio in Docker calls http://host.docker.internal:9090)")
    parser.add_argument("--basic-auth-user", metavar="USER", help="the backend's Basic auth user (default: BASIC_AUTH_USER, "
                        "or the credentials secret's); the password comes from BASIC_AUTH_PASS or that secret")
    parser.add_argument("--credentials-secret", metavar="ARN", help="AWS Secrets Manager secret with the backend's "
                        "credentials, as the deployment made it (default: CREDENTIALS_SECRET)")
    parser.add_argument("--webhook-auth", choices=("secret", "basic"), help="the webhook's credential header: X-Webhook-Secret "
                        "(default when the backend has a webhook secret: it opens /webhook only) or Authorization: Basic")
    parser.add_argument("--title", help=f"the connection's title (default for a new one: {DEFAULT_TITLE!r}; kept on update)")
    parser.add_argument("--extra-params", type=extra_params_arg, default=UNSET, metavar="JSON",
                        help='the connection\'s Extra params, e.g. \'{"model_version": "p12-v3"}\' to pin a version or '
                        "null to clear them (default: kept)")
    parser.add_argument("--connection", type=int, metavar="ID", help="the connection to update when the project has several")
    parser.add_argument("--dry-run", action="store_true", help="check the backend and print what would change; change nothing")
    add_common_options(parser)
    parser.set_defaults(run=connect_command)
