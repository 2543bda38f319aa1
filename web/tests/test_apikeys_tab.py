"""The API Keys tab in a real browser: a key is shown once, then only its prefix; revoke."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apikeys.models import ApiKey
from scripts.tests.factories import ScriptFactory
from web.tests.browser import expect, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def test_make_a_key_see_it_once_use_it_and_revoke_it(page, admin_user, sent):
    script = ScriptFactory(name="Hook", slug="hook", url_trigger=True)
    sign_in(page, "#keys")
    page.click("#add-apikey")
    page.fill("#apikey-form [name=name]", "deploy hook")
    page.wait_for_selector(f"#apikey-form [name=script] option[value='{script.pk}']", state="attached")
    page.select_option("#apikey-form [name=script]", str(script.pk))
    page.select_option("#apikey-form [name=expires_at]", "30d")
    page.click("#apikey-form button[type=submit]")
    raw = page.input_value("#apikey-value")
    assert raw.startswith("tck_")
    expect()(page.locator("#apikey-created pre")).to_contain_text("/api/scripts/hook/trigger")

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.post("/api/scripts/hook/trigger").status_code == 202

    page.click("#apikey-created button.btn-primary")  # done
    row = page.locator("#apikeys-table tr[data-state=active]")
    expect()(row).to_contain_text(raw[:12])
    assert raw not in page.content()
    key = ApiKey.objects.get()
    assert key.script == script and key.expires_at is not None

    row.locator("button", has_text="revoke").click()
    page.click(".confirm .btn-danger")
    expect()(page.locator("#apikeys-table tr[data-state=revoked]")).to_be_visible()
    assert client.post("/api/scripts/hook/trigger").status_code == 401


def test_a_script_s_settings_show_its_url_trigger(page, admin_user, sent):
    script = ScriptFactory(name="Hook", slug="hook", url_trigger=True)
    sign_in(page, f"#scripts/{script.pk}")
    expect()(page.locator("#script-url-trigger")).to_be_checked()
    expect()(page.locator("#script-url-trigger-get")).not_to_be_checked()
