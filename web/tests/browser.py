"""Playwright in Debian's Chromium against the live server: the fixtures and helpers every
browser test shares (conftest.py makes the fixtures available to web/tests)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
PASSWORD = "a-strong-test-password"
TIMEOUT_MS = 10_000


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop running in this thread, which makes Django
    # refuse ORM calls from the test itself; those calls are plain synchronous code, so allow them
    # while the browser is up.
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server, transactional_db, request):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, timezone_id="Europe/Prague")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.dialogs = []
    page.errors = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.base = live_server.url
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        page.wait_for_timeout(250)  # let the panel's fade-in finish
        page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    finally:
        context.close()
    assert page.errors == [], f"JavaScript errors: {page.errors}"


def sign_in(page, hash_: str = "") -> None:
    page.goto(f"{page.base}/web{hash_}")
    page.fill("#login-username", "admin")
    page.fill("#login-password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#tabs:not([hidden])")


def expect():
    from playwright.sync_api import expect as _expect

    return _expect


def open_tab(page, name: str) -> None:
    page.click(f".tab[data-tab={name}]")
