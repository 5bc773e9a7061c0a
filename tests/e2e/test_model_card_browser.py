"""The model card opened in a real headless browser: Debian's chromium driven by Playwright,
against the app served by uvicorn on a loopback port, with HTTP Basic credentials.

Needs the `playwright` package (requirements-dev.txt) and chromium at $CHROMIUM_PATH (default
/usr/bin/chromium: `apt-get install chromium`; Playwright's own browser downloads are never used).
Skipped locally when either is missing; fails under CI=true (.ci/run installs chromium).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import pytest

from functions.api.app import create_app
from functions.model_card.charts import render_charts
from functions.settings import Settings
from functions.store import open_store
from tests.card_samples import MATRIX, SCRIPT, control_report, manifest_body, publish_card
from tests.served import serve

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PROJECT, USER, PASSWORD = "5", "card", "card-browser-password"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


def sync_playwright() -> Any:
    """Playwright's entry point; skips (fails under CI=true) when it or chromium is missing."""
    missing = []
    try:
        from playwright.sync_api import sync_playwright as entry
    except ImportError:
        entry = None
        missing.append("the playwright package (pip install -r requirements-dev.txt)")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"a chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)")
    if missing:
        message = "the browser test needs " + " and ".join(missing)
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return entry


def test_the_model_card_renders_in_a_real_browser(tmp_path: Path) -> None:
    entry = sync_playwright()
    settings = Settings(model_store_uri=f"file://{tmp_path / 'store'}", basic_auth_user=USER, basic_auth_pass=PASSWORD)
    charts = render_charts(control_report())
    version = publish_card(open_store(settings.model_store_uri), PROJECT, "job-1", manifest_body(), {"topic": charts}, settings=settings)
    url = f"/projects/{PROJECT}/versions/{version}"
    screenshot = tmp_path / "model_card.png"
    with serve(create_app(settings)) as base, entry() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        try:
            anonymous = browser.new_page()  # the card is behind the same Basic auth: headless chromium cannot prompt
            with pytest.raises(Exception, match="ERR_INVALID_AUTH_CREDENTIALS"):
                anonymous.goto(base + url)
            assert anonymous.request.get(base + url).status == 401
            anonymous.close()

            page = browser.new_page(viewport={"width": 1280, "height": 900})
            problems: list[str] = []
            page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}") if message.type in ("error", "warning") else None)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
            page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
            page.set_extra_http_headers(AUTH)
            response = page.goto(base + url, wait_until="load")  # chromium's own Accept header: text/html first

            assert response is not None and response.status == 200
            assert response.headers["content-type"].startswith("text/html")
            assert version in page.title()
            for name in ("confusion", "reliability", "auto_label"):
                box = page.locator(f"figure.{name} svg").bounding_box()
                assert box is not None and box["width"] > 100 and box["height"] > 100, (name, box)
            cells = page.locator("figure.confusion svg g.cell")
            assert cells.count() == 16
            assert cells.locator("text.count").all_text_contents() == [str(n) for row in MATRIX for n in row]
            assert all(cells.nth(i).locator("rect").bounding_box()["width"] > 10 for i in range(16))
            assert page.locator("figure.confusion svg text.row-label").nth(2).text_content() == SCRIPT[:17] + "\u2026"
            assert page.locator("table.labels td", has_text=SCRIPT).count() == 1  # shown as text, not run
            assert page.locator("table.suspects tr").count() == 3
            assert page.evaluate("document.scripts.length") == 0
            page.screenshot(path=str(screenshot), full_page=True)
            assert problems == []
        finally:
            browser.close()
    assert screenshot.stat().st_size > 20_000
    print(f"model card screenshot: {screenshot}")
