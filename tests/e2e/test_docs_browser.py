"""/docs in a real headless browser with every request off loopback blocked (issue 11, item 6):
Swagger UI renders the API's operations from the assets the app serves itself, under the page's
Content-Security-Policy, with no console error. Debian's chromium driven by Playwright, like the
model card's browser test (same launch helpers; skipped locally without them, fails under CI=true)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from functions.api.app import create_app
from functions.settings import Settings
from tests.e2e.test_model_card_browser import ARGS, CHROMIUM, sync_playwright
from tests.served import serve

USER, PASSWORD = "docs", "docs-browser-password"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def test_the_docs_render_the_operations_with_the_network_blocked(tmp_path: Path) -> None:
    entry = sync_playwright()
    settings = Settings(model_store_uri=f"file://{tmp_path / 'store'}", basic_auth_user=USER, basic_auth_pass=PASSWORD)
    app = create_app(settings)
    operations = sum(len(methods) for methods in app.openapi()["paths"].values())
    screenshot = tmp_path / "docs.png"
    with serve(app) as base, entry() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=60_000)
        try:
            context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD},
                                          viewport={"width": 1280, "height": 900})
            blocked: list[str] = []
            loaded: list[str] = []

            def only_loopback(route, request) -> None:
                if urlsplit(request.url).hostname in LOOPBACK:
                    loaded.append(request.url)
                    route.continue_()
                else:
                    blocked.append(request.url)
                    route.abort("internetdisconnected")

            context.route("**/*", only_loopback)
            page = context.new_page()
            problems: list[str] = []
            page.on("console", lambda message: problems.append(f"console {message.type}: {message.text}") if message.type in ("error", "warning") else None)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url} {request.failure}"))
            response = page.goto(base + "/docs", wait_until="load")

            assert response is not None and response.status == 200
            page.locator(".opblock").first.wait_for(state="visible", timeout=30_000)
            blocks = page.locator(".opblock")
            assert blocks.count() > 5
            assert blocks.count() == operations
            assert page.locator(".opblock-summary-path[data-path='/predict']").count() == 1
            assert page.locator(".swagger-ui .info .title").inner_text().startswith(app.title)
            assert page.locator(".errors-wrapper").count() == 0  # Swagger UI shows schema errors there
            assert "rgb(" in page.evaluate("getComputedStyle(document.querySelector('.opblock')).borderColor")  # the stylesheet applied
            page.screenshot(path=str(screenshot), full_page=False)

            health = page.locator("#operations-label-studio-health_health_get")  # Try it out: a fetch the policy allows
            health.locator(".opblock-summary").click()
            health.get_by_role("button", name="Try it out").click()
            health.get_by_role("button", name="Execute").click()
            reply = health.locator(".live-responses-table tbody .response-col_status").first
            reply.wait_for(state="visible", timeout=15_000)
            assert reply.inner_text().strip() == "200"
            assert '"UP"' in health.locator(".live-responses-table .microlight").first.inner_text()
            assert blocked == []
            assert {urlsplit(url).path for url in loaded} >= {"/docs", "/docs/static/swagger-ui-bundle.js", "/docs/static/swagger-ui.css",
                                                            "/docs/static/swagger-initializer.js", "/openapi.json"}
            assert problems == []
            context.close()
        finally:
            browser.close()
    assert screenshot.stat().st_size > 20_000
    print(f"docs screenshot: {screenshot}")
