"""Editing a script in Chromium: auto-save with versions, restore, two editors saving over each
other (the 409 and its reload), templates in the new-script dialog, and the keyboard shortcuts."""

from __future__ import annotations

import re

import pytest

from scripts import services
from scripts.models import Script, ScriptVersion
from secrets_vault.services import secret_create
from web.tests.browser import LOAD_MS, PASSWORD, TIMEOUT_MS, code_editor, expect, set_code, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def saved_as(page, version: int, timeout: int = TIMEOUT_MS):
    expect()(page.locator("#script-save-state")).to_have_text(f"✓ saved (v{version})", timeout=timeout)


def test_code_saves_itself_each_save_is_a_version_and_a_version_can_be_restored(page, admin_user, sent):
    script = services.script_create(name="Autosaved", code="print(1)\n", author="admin")
    sign_in(page, f"#scripts/{script.pk}")
    saved_as(page, 1, LOAD_MS)

    set_code(page, "print(2)\n")  # no save button: it saves itself a second later
    saved_as(page, 2)
    expect()(page.locator("#script-dirty")).to_be_hidden()
    script.refresh_from_db()
    assert script.code == "print(2)\n" and script.version == 2
    rows = page.locator("#versions-table tr.version-row")
    expect()(rows).to_have_count(2)
    expect()(rows.first).to_contain_text("v2 (current)")
    expect()(rows.first).to_contain_text("+1 -1")

    rows.first.locator("[data-action=diff]").click()
    expect()(page.locator("#version-diff-title")).to_have_text("v1 → v2: +1 -1")
    expect()(page.locator("#version-diff .diff-add")).to_have_text("+print(2)\n")

    page.locator("#versions-table tr[data-version='1'] [data-action=restore]").click()
    expect()(page.locator("#modal .confirm-message")).to_contain_text("Restore version 1?")
    page.click("#modal .btn-primary")
    saved_as(page, 3)
    expect()(code_editor(page)).to_have_text("print(1)")
    expect()(rows).to_have_count(3)
    expect()(rows.first).to_contain_text("restored from v1")
    assert ScriptVersion.objects.get(script=script, number=3).restored_from == 1


def test_two_editors_saving_over_each_other_get_the_conflict_and_can_reload(
    page, browser, live_server, admin_user, django_user_model, sent
):
    django_user_model.objects.create_user(username="bob", password=PASSWORD, is_staff=True)
    script = services.script_create(name="Shared", code="print('base')\n", author="admin")
    sign_in(page, f"#scripts/{script.pk}")
    saved_as(page, 1, LOAD_MS)

    other = browser.new_context(viewport={"width": 1400, "height": 900})
    other.set_default_timeout(TIMEOUT_MS)
    bob = other.new_page()
    bob.base = live_server.url
    try:
        sign_in(bob, f"#scripts/{script.pk}", username="bob")
        expect()(bob.locator("#script-save-state")).to_have_text("✓ saved (v1)", timeout=LOAD_MS)
        set_code(bob, "print('bob')\n")
        expect()(bob.locator("#script-save-state")).to_have_text("✓ saved (v2)")
    finally:
        other.close()

    set_code(page, "print('admin')\n")
    conflict = page.locator("#script-conflict")
    expect()(conflict).to_be_visible()
    expect()(conflict).to_contain_text(re.compile(r"version 2 was saved by bob at .*Nothing was saved"))
    expect()(page.locator("#script-save-state")).to_contain_text("conflict")
    script.refresh_from_db()
    assert script.code == "print('bob')\n"

    page.click("#conflict-reload")
    expect()(conflict).to_be_hidden()
    expect()(code_editor(page)).to_have_text("print('bob')")
    saved_as(page, 2)
    # Edits from the reloaded version save again.
    set_code(page, "print('admin, after reading bob')\n")
    saved_as(page, 3)


def test_new_from_template_with_a_vault_secret(page, admin_user, sent):
    secret_create(name="kbc-prod", type="keboola", value="kbc-token-never-shown-123456")
    sign_in(page, "#scripts")
    page.click("#create-from-template")
    page.select_option("#script-template", "keboola-storage")
    expect()(page.locator("#script-template-help")).to_contain_text("buckets")
    expect()(page.locator("#script-template-secrets select")).to_have_value("kbc-prod")
    page.fill("#script-create-form [name=name]", "Buckets")
    page.click("#script-create-form button[type=submit]")
    expect()(page.locator("#script-title")).to_have_text("Buckets", timeout=LOAD_MS)
    expect()(code_editor(page)).to_contain_text("X-StorageApi-Token")
    script = Script.objects.get(slug="buckets")
    assert script.network
    variables = {v.name: (v.secret.name if v.secret_id else v.value) for v in script.env_vars.all()}
    assert variables == {"KBC_URL": "https://connection.keboola.com", "KBC_TOKEN": "kbc-prod"}


def test_keyboard_shortcuts_save_switch_tabs_and_focus_the_command_line(page, admin_user, sent):
    script = services.script_create(name="Keys", code="print('keys')\n", author="admin")
    sign_in(page, f"#scripts/{script.pk}")
    saved_as(page, 1, LOAD_MS)

    # A setting does not save itself; Ctrl+S saves it from wherever the focus is.
    page.fill("#script-form [name=timeout_seconds]", "42")
    expect()(page.locator("#script-dirty")).to_be_visible()
    page.keyboard.press("Control+s")
    expect()(page.locator("#script-dirty")).to_be_hidden()
    script.refresh_from_db()
    assert script.timeout_seconds == 42

    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("g")
    page.keyboard.press("2")
    expect()(page.locator("#panel-jobs")).to_be_visible()
    assert page.url.endswith("#jobs")

    page.keyboard.press("/")
    expect()(page.locator("#console-input")).to_be_focused()
    page.keyboard.type("help")
    page.keyboard.press("Enter")
    expect()(page.locator("#console-output")).to_contain_text("g then 1-6")
    expect()(page.locator("#console-output")).to_contain_text("Ctrl+S")
