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
# CI runs these tests four at a time on two cores next to Celery workers, where a page can stall
# for many seconds. A wait only lasts this long when something is broken, so be generous: every
# action, navigation and expect() assertion waits up to TIMEOUT_MS, and the first load of the
# page or of a script's editor (the CodeMirror bundle) up to LOAD_MS.
TIMEOUT_MS = 30_000
LOAD_MS = 60_000


# Markup injected from user text would carry an inline handler (<img onerror=...>); the page itself
# never writes one (dom.js adds listeners). Recording every element that ever had one tells a test
# that nothing was injected, without waiting to see whether an alert comes.
WATCH_INLINE_HANDLERS = """
window.__inlineHandlers = [];
new MutationObserver((mutations) => {
  const check = (el) => {
    for (const attr of el.attributes) if (attr.name.startsWith("on")) window.__inlineHandlers.push(el.outerHTML);
  };
  for (const m of mutations) {
    if (m.type === "attributes") check(m.target);
    for (const node of m.addedNodes) if (node instanceof Element) [node, ...node.querySelectorAll("*")].forEach(check);
  }
}).observe(document, { childList: true, subtree: true, attributes: true });
"""


def inline_handlers(page) -> list[str]:
    """Every element of this page load that carried an inline event handler (none should)."""
    return page.evaluate("window.__inlineHandlers")


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
        # expect() has its own default (5 s), apart from the context's.
        expect().set_options(timeout=TIMEOUT_MS)
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
    context.add_init_script(WATCH_INLINE_HANDLERS)
    page = context.new_page()
    page.dialogs = []
    page.errors = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.base = live_server.url
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        screenshot(page, ARTIFACTS / f"{request.node.name}.png", full_page=True)
    finally:
        context.close()
    assert page.errors == [], f"JavaScript errors: {page.errors}"


def screenshot(page, path, **options) -> None:
    """A screenshot of the page as it settles: Playwright finishes the panels' fade-in (and stops
    the endless pulses) instead of the test sleeping and hoping the fade is over."""
    page.screenshot(path=str(path), animations="disabled", **options)


def sign_in(page, hash_: str = "", username: str = "admin") -> None:
    """Sign in on the login form the page shows first; waits for the signed-in page."""
    page.goto(f"{page.base}/web{hash_}", timeout=LOAD_MS)
    page.fill("#login-username", username, timeout=LOAD_MS)
    page.fill("#login-password", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#tabs:not([hidden])", timeout=LOAD_MS)


def expect():
    from playwright.sync_api import expect as _expect

    return _expect


def open_tab(page, name: str) -> None:
    page.click(f".tab[data-tab={name}]")


def code_editor(page, field: str = "code"):
    """The editable text of a script's code (or requirements) editor."""
    return page.locator(f"#script-{field} .cm-content")


def set_code(page, text: str, field: str = "code") -> None:
    """Replace what the editor holds with `text` as a user does: focus it, select all, type.

    Playwright's fill() selects the text with a DOM range and inserts at once; CodeMirror learns of
    that selection from a later selectionchange event, so on a loaded machine the insert can land
    first and add to the code instead of replacing it. Ctrl+A goes through CodeMirror's own keymap,
    so its selection is in place before the text arrives. insert_text types the text in one input
    event, so the editor's auto-indent and bracket closing leave it as it is."""
    editor = code_editor(page, field)
    # The first script page opened loads the editor bundle.
    expect()(editor).to_be_editable(timeout=LOAD_MS)
    editor.click()
    expect()(editor).to_be_focused()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(text)
    # Lines are the editor's blocks, so compare the inner text (whitespace normalised).
    expect()(editor).to_have_text(text, use_inner_text=True)
