"""/api/scripts, /api/runs, /api/pythons: the contract's shapes, errors as `detail`."""

from datetime import timedelta

import pytest
from django.utils import timezone

from scripts.models import RunState, Script, ScriptRun
from scripts.tests.factories import ScriptFactory, ScriptRunFactory
from secrets_vault.services import secret_create

pytestmark = pytest.mark.django_db

SECRET_VALUE = "tok-never-shown-0123456789"


def test_create_list_show_change_delete(api, sent):
    response = api.post(
        "/api/scripts",
        {
            "name": "Hello World",
            "folder": "demo",
            "code": "print('hi')\n",
            "schedule": {"type": "cron", "cron": "0 3 * * *", "timezone": "Europe/Prague"},
            "notify": {"on_failure": True, "emails": ["ops@example.com"]},
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    script = response.json()
    assert script["slug"] == "hello-world" and script["folder"] == "demo"
    assert script["schedule"] == {"type": "cron", "cron": "0 3 * * *", "timezone": "Europe/Prague"}
    assert script["environment"]["state"] == "creating"
    assert len(script["next_runs"]) == 5 and script["last_run"] is None
    assert script["notify"] == {"on_success": False, "on_failure": True, "emails": ["ops@example.com"]}

    listed = api.get("/api/scripts").json()
    assert listed["total"] == 1 and listed["scripts"][0]["id"] == script["id"]
    assert api.get("/api/scripts", {"folder": "other"}).json()["total"] == 0

    changed = api.patch(f"/api/scripts/{script['id']}", {"name": "Renamed", "enabled": False}, format="json")
    assert changed.status_code == 200
    assert changed.json()["name"] == "Renamed" and changed.json()["slug"] == "hello-world"
    assert changed.json()["next_runs"] == []  # disabled

    deleted = api.delete(f"/api/scripts/{script['id']}")
    assert deleted.status_code == 200 and deleted.json()["success"] is True
    assert api.get(f"/api/scripts/{script['id']}").status_code == 404


def test_a_syntax_error_answers_with_the_line(api, sent):
    response = api.post("/api/scripts", {"name": "x", "code": "a = 1\nb = (\n"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["line"] == 2 and body["detail"].startswith("Line 2: ")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "Expected a JSON object"),
        ({"name": "x", "schedule": {"type": "cron", "cron": "0 3 * *"}}, "5 fields"),
        ({"name": "x", "python_version": "2.7"}, "not available"),
        ({"name": "x", "requirements": "-e ."}, "Line 1"),
        ({"name": "x", "timeout_seconds": "ten"}, "whole number"),
        ({"name": "x", "bogus": 1}, "bogus: Unknown field."),
        ({"code": "print(1)"}, "name: This field is required."),
    ],
)
def test_bad_input_is_a_400_with_a_readable_detail(api, sent, body, message):
    response = api.post("/api/scripts", body, format="json")
    assert response.status_code == 400, response.json()
    assert message in response.json()["detail"]
    assert not Script.objects.exists()


def test_secret_values_are_never_returned(api, sent):
    secret_create(name="api-token", type="http_header", value=SECRET_VALUE)
    response = api.post(
        "/api/scripts",
        {"name": "s", "env": [{"name": "TOKEN", "secret": "api-token"}, {"name": "MODE", "value": "prod"}]},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["env"] == [
        {"name": "TOKEN", "secret": "api-token"},
        {"name": "MODE", "value": "prod"},
    ]
    for url in ("/api/scripts", f"/api/scripts/{response.json()['id']}"):
        assert SECRET_VALUE not in api.get(url).content.decode()


def test_run_now_is_accepted_and_queued(api, sent, django_capture_on_commit_callbacks):
    script = ScriptFactory()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(f"/api/scripts/{script.pk}/run")
    assert response.status_code == 202
    run = response.json()
    assert (run["state"], run["trigger"], run["script"], run["script_slug"]) == (
        "queued",
        "manual",
        script.pk,
        script.slug,
    )
    assert "output" not in run
    assert [run_id for run_id, _ in sent["run"]] == [run["id"]]


def test_runs_lists_filter_and_search_the_output(api):
    script = ScriptFactory()
    ScriptRunFactory(script=script, state=RunState.SUCCEEDED, output="all good\n")
    needle = ScriptRunFactory(script=script, state=RunState.FAILED, output="Traceback: KeyError 'needle'\n")
    ScriptRunFactory(state=RunState.FAILED, output="other script\n")

    assert api.get(f"/api/scripts/{script.pk}/runs").json()["total"] == 2
    assert api.get("/api/runs").json()["total"] == 3
    found = api.get("/api/runs", {"search": "needle"}).json()
    assert found["total"] == 1 and found["runs"][0]["id"] == needle.pk
    assert api.get("/api/runs", {"script": script.pk, "state": "failed"}).json()["total"] == 1
    assert api.get("/api/runs", {"state": "exploded"}).status_code == 400


def test_a_run_with_its_output_and_the_output_as_text(api):
    started = timezone.now() - timedelta(seconds=3)
    run = ScriptRunFactory(
        state=RunState.SUCCEEDED,
        output="line 1\nline 2\n",
        exit_code=0,
        started_at=started,
        finished_at=started + timedelta(seconds=2),
    )
    detail = api.get(f"/api/runs/{run.pk}").json()
    assert detail["output"] == "line 1\nline 2\n" and detail["duration_seconds"] == 2.0
    text = api.get(f"/api/runs/{run.pk}/output")
    assert text.status_code == 200 and text["Content-Type"].startswith("text/plain")
    assert text.content.decode() == "line 1\nline 2\n"


def test_cancel_a_run_and_a_script_s_runs(api):
    run = ScriptRunFactory()
    response = api.post(f"/api/runs/{run.pk}/cancel")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    again = api.post(f"/api/runs/{run.pk}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]

    script = ScriptFactory()
    ScriptRunFactory(script=script)
    ScriptRunFactory(script=script, state=RunState.RUNNING)
    response = api.post(f"/api/scripts/{script.pk}/cancel")
    assert response.status_code == 200 and response.json()["message"] == "2 run(s) cancelled"
    assert ScriptRun.objects.filter(script=script, state=RunState.CANCELLED).count() == 1
    assert ScriptRun.objects.filter(script=script, cancel_requested=True).count() == 1


def test_environment_state_and_rebuild(api, sent, django_capture_on_commit_callbacks):
    script = ScriptFactory(env_disk_bytes=12345)
    info = api.get(f"/api/scripts/{script.pk}/environment").json()
    assert info["state"] == "ready" and info["disk_bytes"] == 12345
    with django_capture_on_commit_callbacks(execute=True):
        rebuilt = api.post(f"/api/scripts/{script.pk}/environment/rebuild")
    assert rebuilt.status_code == 202 and rebuilt.json()["state"] == "creating"
    assert len(sent["build"]) == 1


def test_environment_check_of_a_missing_environment(api):
    script = ScriptFactory()
    body = api.post(f"/api/scripts/{script.pk}/environment/check").json()
    assert body == {"ok": False, "problems": ["The environment does not exist yet."], "python_version": ""}


def test_pythons_lists_the_machine_s_interpreters(api):
    pythons = api.get("/api/pythons").json()["pythons"]
    assert pythons and all({"version", "path", "default"} == set(p) for p in pythons)
    assert sum(p["default"] for p in pythons) == 1


def test_schedule_preview(api):
    ok = api.post(
        "/api/scripts/schedule-preview",
        {"schedule": {"type": "interval", "every": 5, "unit": "minutes"}},
        format="json",
    )
    assert ok.status_code == 200 and len(ok.json()["next_runs"]) == 5
    bad = api.post(
        "/api/scripts/schedule-preview", {"schedule": {"type": "cron", "cron": "99 * * * *"}}, format="json"
    )
    assert bad.status_code == 400 and "minute field '99'" in bad.json()["detail"]


def test_unknown_ids_are_404(api):
    for url in ("/api/scripts/999", "/api/runs/999", "/api/runs/999/output", "/api/scripts/999/runs"):
        response = api.get(url)
        assert response.status_code == 404 and response.json()["detail"], url


def test_versions_history_one_version_diff_and_restore(api, sent):
    script = api.post("/api/scripts", {"name": "Versioned", "code": "print(1)\n"}, format="json").json()
    assert script["version"] == 1
    url = f"/api/scripts/{script['id']}"
    changed = api.patch(url, {"code": "print(2)\nprint(3)\n", "base_version": 1}, format="json")
    assert changed.status_code == 200 and changed.json()["version"] == 2

    history = api.get(f"{url}/versions").json()
    assert history["total"] == 2 and history["current"] == 2
    newest = history["versions"][0]
    assert (newest["number"], newest["author"], newest["added"], newest["removed"]) == (2, "admin", 2, 1)
    assert newest["current"] and "code" not in newest

    first = api.get(f"{url}/versions/1").json()
    assert first["code"] == "print(1)\n" and first["current"] is False

    diff = api.get(f"{url}/versions/1/diff/2").json()
    assert diff["from"] == 1 and diff["to"] == 2 and "+print(3)" in diff["code_diff"]

    restored = api.post(f"{url}/versions/1/restore")
    assert restored.status_code == 200
    assert restored.json()["code"] == "print(1)\n" and restored.json()["version"] == 3
    assert api.get(f"{url}/versions/3").json()["restored_from"] == 1

    missing = api.get(f"{url}/versions/7")
    assert missing.status_code == 404 and "has no version 7" in missing.json()["detail"]
    assert api.post(f"{url}/versions/9/restore").status_code == 404


def test_a_save_from_an_older_version_is_409_naming_who_saved_the_newer_one(api, sent):
    script = api.post("/api/scripts", {"name": "Contested", "code": "print(0)\n"}, format="json").json()
    url = f"/api/scripts/{script['id']}"
    assert api.put(url, {"code": "print('first')\n", "base_version": 1}, format="json").status_code == 200
    late = api.patch(url, {"code": "print('second')\n", "base_version": 1}, format="json")
    assert late.status_code == 409
    body = late.json()
    assert body["current_version"] == 2 and body["base_version"] == 1 and body["saved_by"] == "admin"
    assert "version 2 was saved by admin at" in body["detail"] and "Nothing was saved" in body["detail"]
    assert api.get(url).json()["code"] == "print('first')\n"

    bad = api.patch(url, {"code": "print(1)\n", "base_version": "two"}, format="json")
    assert bad.status_code == 400 and "base_version" in bad.json()["errors"]
    # Clients that do not send base_version keep working: the last save wins.
    assert api.patch(url, {"code": "print('no base')\n"}, format="json").json()["version"] == 3
