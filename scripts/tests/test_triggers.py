"""POST/GET /api/scripts/{slug}/trigger with API keys (scripts/services/triggers.py)."""

import json
import threading

import pytest
from django.db import connection

from apikeys.services import apikey_revoke
from scripts import services
from scripts.models import RunTrigger, ScriptRun, TriggerRequest
from scripts.services.environments import environment_build_now
from scripts.tests.factories import ScriptFactory

pytestmark = pytest.mark.django_db

PARAMS_CODE = "import json, os\nprint(os.environ['TECKOCHECKER_TRIGGER'], json.loads(os.environ['TECKOCHECKER_PARAMS']))\n"


def _trigger(client, slug="hook", body=None, **headers):
    return client.post(
        f"/api/scripts/{slug}/trigger",
        json.dumps(body) if body is not None else "",
        content_type="application/json",
        **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()},
    )


def test_a_key_triggers_a_script_whose_parameters_reach_it(
    sent, make_key, bearer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        script = services.script_create(name="Hook", code=PARAMS_CODE, url_trigger=True)
    (script_id, token), _ = sent["build"][-1]
    assert environment_build_now(script_id=script_id, token=token) == "ready"
    key, raw = make_key(name="ci", script=script)
    client = bearer(raw)

    with django_capture_on_commit_callbacks(execute=True):
        response = _trigger(client, body={"date": "2026-01-31", "n": 3})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["state"] == "queued" and body["replayed"] is False and body["script"] == "hook"
    assert body["url"] == f"http://testserver/api/runs/{body['run_id']}" == response["Location"]
    assert sent["run"][-1][0] == body["run_id"]  # handed to the scripts queue

    services.run_execute(run_id=body["run_id"])
    followed = client.get(body["url"])  # the same key follows the run it started
    assert followed.status_code == 200
    run = followed.json()
    assert run["trigger"] == "url" and run["triggered_by"] == f"key 'ci' ({key.prefix}…)"
    assert run["state"] == "succeeded" and run["output"] == "url {'date': '2026-01-31', 'n': 3}\n"
    assert client.get(f"/api/runs/{body['run_id']}/output").status_code == 200


def test_a_trigger_key_follows_only_its_own_runs(sent, make_key, bearer):
    script = ScriptFactory(slug="hook", url_trigger=True)
    _mine, raw = make_key(name="mine", script=script)
    _other, other_raw = make_key(name="other")
    run_id = _trigger(bearer(raw)).json()["run_id"]
    manual = services.script_run_now(script=script)
    assert bearer(other_raw).get(f"/api/runs/{run_id}").status_code == 403
    assert bearer(raw).get(f"/api/runs/{manual.pk}").status_code == 403
    assert bearer(raw).get("/api/runs").status_code == 403


@pytest.mark.parametrize("presented", ["tck_wrong", "expired", "revoked", "staff-token", None])
def test_wrong_expired_and_revoked_keys_get_401(sent, make_key, bearer, anon, api, presented, admin_user):
    ScriptFactory(slug="hook", url_trigger=True)
    key, raw = make_key(expires_at="1h")
    if presented == "expired":
        type(key).objects.filter(pk=key.pk).update(expires_at="2000-01-01T00:00:00Z")
        client = bearer(raw)
    elif presented == "revoked":
        apikey_revoke(key=key)
        client = bearer(raw)
    elif presented == "staff-token":
        client = api  # `Token ...`: the trigger takes API keys only, so the run names its key
    elif presented is None:
        client = anon
    else:
        client = bearer(presented)
    response = _trigger(client)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    if presented in ("expired", "revoked"):
        assert presented in response.json()["detail"]
    assert not ScriptRun.objects.exists()


def test_a_key_for_one_script_cannot_trigger_another(sent, make_key, bearer):
    one = ScriptFactory(slug="one", url_trigger=True)
    ScriptFactory(slug="two", url_trigger=True)
    _key, raw = make_key(script=one)
    for slug in ("two", "does-not-exist"):  # the same answer: it cannot probe for scripts
        response = _trigger(bearer(raw), slug=slug)
        assert response.status_code == 403 and "may only trigger script 'one'" in response.json()["detail"]
    _all, all_raw = make_key(name="all scripts")
    assert _trigger(bearer(all_raw), slug="two").status_code == 202
    assert _trigger(bearer(all_raw), slug="does-not-exist").status_code == 404


def test_a_full_key_triggers_too(sent, make_key, bearer):
    ScriptFactory(slug="hook", url_trigger=True)
    _key, raw = make_key(scope="full")
    assert _trigger(bearer(raw)).status_code == 202


def test_each_script_switches_its_url_trigger_and_its_get_form(sent, make_key, bearer, api):
    script = ScriptFactory(slug="hook")
    _key, raw = make_key()
    client = bearer(raw)
    refused = _trigger(client)
    assert refused.status_code == 403 and "URL trigger is off" in refused.json()["detail"]
    api.patch(f"/api/scripts/{script.pk}", {"url_trigger": True}, format="json")
    assert _trigger(client).status_code == 202
    refused = client.get("/api/scripts/hook/trigger?day=monday")
    assert refused.status_code == 405 and "GET trigger is off" in refused.json()["detail"]
    changed = api.patch(f"/api/scripts/{script.pk}", {"url_trigger_get": True}, format="json").json()
    assert changed["url_trigger"] is True and changed["url_trigger_get"] is True
    by_get = client.get("/api/scripts/hook/trigger?day=monday")
    assert by_get.status_code == 202
    run = ScriptRun.objects.get(pk=by_get.json()["run_id"])
    assert run.trigger == RunTrigger.URL and run.extra_env == {"TECKOCHECKER_PARAMS": '{"day":"monday"}'}
    api.patch(f"/api/scripts/{script.pk}", {"enabled": False}, format="json")
    assert _trigger(client).status_code == 409


@pytest.mark.parametrize("parameter", ["key", "api_key"])
def test_a_key_in_the_url_is_refused_clearly(sent, make_key, anon, parameter):
    ScriptFactory(slug="hook", url_trigger=True, url_trigger_get=True)
    _key, raw = make_key()
    for response in (
        anon.get(f"/api/scripts/hook/trigger?{parameter}={raw}"),
        anon.post(f"/api/scripts/hook/trigger?{parameter}={raw}"),
    ):
        assert response.status_code == 400
        assert "never in the URL" in response.json()["detail"] and raw not in response.content.decode()
    assert not ScriptRun.objects.exists()


def test_parameters_are_a_capped_json_object(sent, make_key, bearer, settings):
    settings.SCRIPTS_TRIGGER_PARAMS_MAX_BYTES = 100
    ScriptFactory(slug="hook", url_trigger=True)
    _key, raw = make_key()
    client = bearer(raw)
    assert _trigger(client, body=[1, 2]).status_code == 400
    too_big = _trigger(client, body={"text": "x" * 200})
    assert too_big.status_code == 413 and "SCRIPTS_TRIGGER_PARAMS_MAX_BYTES" in too_big.json()["detail"]
    broken = client.post("/api/scripts/hook/trigger", "{not json", content_type="application/json")
    assert broken.status_code == 400
    form = client.post("/api/scripts/hook/trigger", "a=1", content_type="application/x-www-form-urlencoded")
    assert form.status_code == 415
    assert not ScriptRun.objects.exists()
    empty = _trigger(client)
    assert ScriptRun.objects.get(pk=empty.json()["run_id"]).extra_env == {"TECKOCHECKER_PARAMS": "{}"}


def test_a_replayed_idempotency_key_returns_the_same_run(sent, make_key, bearer):
    ScriptFactory(slug="hook", url_trigger=True)
    _key, raw = make_key()
    client = bearer(raw)
    first = _trigger(client, body={"a": 1}, idempotency_key="deploy-42")
    again = _trigger(client, body={"a": 1}, idempotency_key="deploy-42")
    assert first.status_code == again.status_code == 202
    assert again.json()["run_id"] == first.json()["run_id"] and again.json()["replayed"] is True
    other = _trigger(client, body={"a": 2}, idempotency_key="deploy-42")
    assert other.status_code == 409 and "other parameters" in other.json()["detail"]
    assert (
        _trigger(client, body={"a": 1}, idempotency_key="deploy-43").json()["run_id"]
        != first.json()["run_id"]
    )
    assert _trigger(client, idempotency_key="x" * 300).status_code == 400
    assert ScriptRun.objects.count() == 2 and TriggerRequest.objects.count() == 2


def _concurrently(count: int, call) -> list:
    """Run `call()` in `count` threads released at once; each thread has its own connection."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(i: int) -> None:
        try:
            barrier.wait()
            results[i] = call()
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_calls_with_one_idempotency_key_make_one_run(sent, make_key, bearer):
    ScriptFactory(slug="hook", url_trigger=True)
    _key, raw = make_key()
    responses = _concurrently(4, lambda: _trigger(bearer(raw), body={"a": 1}, idempotency_key="same"))
    assert [r.status_code for r in responses] == [202] * 4, [r.content for r in responses]
    assert len({r.json()["run_id"] for r in responses}) == 1
    assert sorted(r.json()["replayed"] for r in responses) == [False, True, True, True]
    assert ScriptRun.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_flood_over_the_rate_limit_gets_429_with_retry_after(sent, make_key, bearer, settings):
    settings.API_KEY_RATE_LIMIT = "5/day"
    ScriptFactory(slug="hook", url_trigger=True)
    _key, raw = make_key()
    responses = _concurrently(8, lambda: _trigger(bearer(raw)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [202] * 5 + [429] * 3
    assert all(0 < int(r["Retry-After"]) <= 86400 for r in responses if r.status_code == 429)
    assert ScriptRun.objects.count() == 5
