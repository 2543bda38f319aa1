"""GET /api/export and POST /api/import: staff only, the CLI's exact bytes, 400s naming places."""

import json

import pytest

from bundles.services import bundle_dumps, bundle_export
from bundles.tests.world import CANARIES, make_world
from polling.models import PollingJob
from scripts.models import Script

pytestmark = pytest.mark.django_db


def test_export_answers_the_cli_s_exact_text_and_no_secret_value(api):
    make_world()
    response = api.get("/api/export")
    assert response.status_code == 200
    text = response.content.decode()
    assert text == bundle_dumps(bundle_export())
    assert not any(canary in text for canary in CANARIES)
    assert "Content-Disposition" not in response
    download = api.get("/api/export?download=true")
    assert download["Content-Disposition"] == 'attachment; filename="teckochecker-bundle.json"'


def test_import_dry_run_then_import_then_again_unchanged(api):
    make_world()
    bundle = json.loads(api.get("/api/export").content)
    bundle["scripts"][0]["memory_mb"] = 1024

    preview = api.post("/api/import?dry_run=true", bundle, format="json")
    assert preview.status_code == 200, preview.json()
    assert preview.json()["dry_run"] is True
    assert [i for i in preview.json()["items"] if i["action"] == "update"] == [
        {"kind": "script", "key": "every-five", "action": "update", "fields": ["memory_mb"], "note": ""}
    ]
    assert Script.objects.get(slug="every-five").memory_mb == 512

    applied = api.post("/api/import", bundle, format="json")
    assert applied.json()["changed"] is True and applied.json()["counts"]["update"] == 1
    assert Script.objects.get(slug="every-five").memory_mb == 1024

    again = api.post("/api/import", bundle, format="json").json()
    assert again["changed"] is False
    assert again["summary"].startswith("Nothing to change")


def test_an_invalid_bundle_is_a_400_naming_each_place_and_writes_nothing(api):
    make_world()
    bundle = json.loads(api.get("/api/export").content)
    PollingJob.objects.all().delete()
    bundle["jobs"][0]["openai_secret"] = "gone"
    bundle["jobs"][1]["poll_interval_seconds"] = 10**6

    response = api.post("/api/import", bundle, format="json")

    assert response.status_code == 400
    body = response.json()
    assert set(body["errors"]) == {
        "jobs[Keboola job].openai_secret",
        "jobs[Script job].poll_interval_seconds",
    }
    assert body["detail"].startswith("Nothing was imported (2 errors).")
    assert not PollingJob.objects.exists()


@pytest.mark.parametrize("body", [[], "x", {"format": "teckochecker-bundle", "version": 99}])
def test_a_body_that_is_no_bundle_is_a_400(api, body):
    response = api.post("/api/import", body, format="json")
    assert response.status_code == 400
    assert response.json()["errors"]


def test_a_nul_character_is_refused_before_any_query(api):
    bundle = {"format": "teckochecker-bundle", "version": 1, "scripts": [{"slug": "a\x00", "name": "x"}]}
    response = api.post("/api/import", bundle, format="json")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["scripts[0].slug"]


def test_both_need_a_staff_user(anon, django_user_model):
    assert anon.get("/api/export").status_code in (401, 403)
    assert anon.post("/api/import", {}, format="json").status_code in (401, 403)
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_user(username="plain", password="x"))
    assert client.get("/api/export").status_code == 403
    assert client.post("/api/import", {}, format="json").status_code == 403


def test_a_code_change_by_import_is_a_script_version_saved_by_the_importing_user(api):
    make_world()
    bundle = json.loads(api.get("/api/export").content)
    bundle["scripts"][0]["code"] = "print('new')\n"
    assert api.post("/api/import", bundle, format="json").status_code == 200
    script = Script.objects.get(slug="every-five")
    newest = script.versions.order_by("-number").first()
    assert (newest.number, newest.code, newest.author) == (2, "print('new')\n", "admin (import)")
