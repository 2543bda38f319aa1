"""A key is shown once, when it is made. After that it must appear nowhere of ours: not in API
answers (successes or errors), admin pages, command output, logs or stored rows, whatever the
key is used for and however it is refused."""

import io
import logging

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from scripts.tests.factories import ScriptFactory
from teckochecker.logfilters import redact

pytestmark = pytest.mark.django_db


def test_an_api_key_never_leaks_after_creation(api, bearer, anon, admin_user, sent, settings, caplog):
    caplog.set_level(logging.DEBUG)
    settings.API_KEY_RATE_LIMIT = "8/day"
    script = ScriptFactory(slug="hook", url_trigger=True)
    ScriptFactory(slug="other", url_trigger=True)
    created = api.post("/api/admin/keys", {"name": "canary", "script": "hook"}, format="json").json()
    raw = created["key"]
    seen: list[str] = []

    def keep(response):
        seen.append(f"{response.status_code} {dict(response.items())} {response.content.decode()}")
        return response

    client = bearer(raw)
    run_id = keep(client.post("/api/scripts/hook/trigger", {"p": 1}, format="json")).json()["run_id"]
    keep(client.post("/api/scripts/hook/trigger", {"p": 1}, format="json", HTTP_IDEMPOTENCY_KEY="i-1"))
    keep(client.post("/api/scripts/hook/trigger", {"p": 1}, format="json", HTTP_IDEMPOTENCY_KEY="i-1"))
    keep(client.post("/api/scripts/hook/trigger", {"p": 2}, format="json", HTTP_IDEMPOTENCY_KEY="i-1"))  # 409
    keep(client.get(f"/api/runs/{run_id}"))
    keep(client.post("/api/scripts/other/trigger"))  # out of scope
    keep(client.get("/api/scripts"))  # scope: trigger only
    keep(client.get("/api/scripts/hook/trigger"))  # GET is off
    keep(client.post("/api/scripts/hook/trigger", "[1]", content_type="application/json"))  # 400
    keep(anon.post(f"/api/scripts/hook/trigger?api_key={raw}"))  # key in the URL
    keep(bearer(raw + "x").post("/api/scripts/hook/trigger"))  # wrong
    for _ in range(6):  # over the rate limit
        keep(client.post("/api/scripts/hook/trigger"))
    assert "429" in seen[-1]
    for url in ("/api/admin/keys", f"/api/admin/keys/{created['id']}", f"/api/runs/{run_id}", "/api/runs"):
        keep(api.get(url))
    keep(api.post(f"/api/admin/keys/{created['id']}/revoke"))
    keep(client.post("/api/scripts/hook/trigger"))  # revoked

    browser = Client()
    browser.force_login(admin_user)
    for url in (
        "/admin/apikeys/apikey/",
        f"/admin/apikeys/apikey/{created['id']}/change/",
        f"/admin/scripts/scriptrun/{run_id}/change/",
        f"/admin/scripts/script/{script.pk}/change/",
        "/admin/admin/logentry/",
    ):
        page = browser.get(url)
        assert page.status_code in (200, 404), url
        seen.append(page.content.decode())
    for args in (["list"], ["list", "--json"]):
        out = io.StringIO()
        call_command("apikey", *args, stdout=out, stderr=out)
        seen.append(out.getvalue())
    with connection.cursor() as cursor:  # every text the keys and runs tables hold
        for table in ("apikeys_apikey", "scripts_scriptrun", "scripts_triggerrequest"):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 (fixed table names)
            seen.append(repr(cursor.fetchall()))
    seen.append(caplog.text)
    # The log filter masks a key that some library might print one day.
    seen += [redact(f"Authorization: Bearer {raw}"), redact(f"sent {raw} along")]

    text = "\n".join(seen)
    assert created["prefix"] in text  # the key is named by its prefix ...
    assert raw not in text and raw[12:] not in text and raw[14:30] not in text  # ... and nothing more
