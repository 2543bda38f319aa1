"""Hostile and broken requests get a clear 4xx with a readable `detail`, never a 500."""

import json

import pytest
from django.conf import settings

from polling.models import PollingJob
from secrets_vault.models import Secret
from secrets_vault.services import secret_create

pytestmark = pytest.mark.django_db

HUGE = 2**63  # one past PostgreSQL's bigint
HUGER = 10**40


@pytest.fixture
def secrets():
    return (
        secret_create(name="bad-openai", type="openai", value="sk-bad-input-0000"),
        secret_create(name="bad-keboola", type="keboola", value="kbc-bad-input-0000"),
    )


def _job_body(secrets, **changes):
    openai, keboola = secrets
    body = {
        "name": "bad input",
        "batch_ids": ["batch_bad"],
        "openai_secret_id": openai.pk,
        "keboola_secret_id": keboola.pk,
        "keboola_stack_url": "https://connection.keboola.com",
        "keboola_component_id": "c",
        "keboola_configuration_id": "1",
        "poll_interval_seconds": 60,
    }
    body.update(changes)
    return body


def _clear_4xx(response, *codes):
    assert response.status_code in codes, (response.status_code, response.content[:300])
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]


def test_a_body_over_max_request_bytes_is_413(api):
    big = json.dumps(
        {"name": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10), "type": "openai", "value": "v"}
    )
    for url in ("/api/admin/secrets", "/api/jobs"):
        _clear_4xx(api.generic("POST", url, big, content_type="application/json"), 413)
    assert not Secret.objects.exists()


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml"],
)
def test_a_body_that_is_not_json_is_415(api, content_type):
    for method, url in (("POST", "/api/admin/secrets"), ("POST", "/api/jobs"), ("PUT", "/api/jobs/1")):
        _clear_4xx(api.generic(method, url, "name=x", content_type=content_type), 415, 404)
    assert not Secret.objects.exists()


@pytest.mark.parametrize("raw", ['{"name": ', "{'name': 'x'}", "[1, 2", "\x00\x01", '{"a": NaN}', "\ufeff{}"])
def test_invalid_json_is_400(api, raw):
    for url in ("/api/admin/secrets", "/api/jobs"):
        _clear_4xx(api.generic("POST", url, raw.encode(), content_type="application/json"), 400)


@pytest.mark.parametrize("body", [[], "text", 42, None, [{"name": "x"}]])
def test_json_that_is_not_an_object_is_400(api, body, secrets):
    for method, url in (("POST", "/api/admin/secrets"), ("POST", "/api/jobs")):
        _clear_4xx(api.generic(method, url, json.dumps(body), content_type="application/json"), 400)


def test_unicode_names_round_trip(api, secrets):
    name = "Nightly 🌙 ünïcødé — 日本語"
    response = api.post("/api/jobs", _job_body(secrets, name=name), format="json")
    assert response.status_code == 201, response.content
    assert api.get(f"/api/jobs/{response.json()['id']}").json()["name"] == name
    secret = api.post(
        "/api/admin/secrets", {"name": "clé 🔑", "type": "openai", "value": "sk-ü"}, format="json"
    )
    assert secret.status_code == 201 and secret.json()["name"] == "clé 🔑"


@pytest.mark.parametrize(
    "bad", ["nul\x00byte", "bell\x07", "escape\x1b[31mred", "\ud800", "line\nbreak", "\u202eevil"]
)
def test_control_characters_in_names_never_cause_a_500(api, secrets, bad):
    def post(url, body):  # json.dumps escapes a lone surrogate, as a hostile client would send it
        return api.generic("POST", url, json.dumps(body), content_type="application/json")

    job = post("/api/jobs", _job_body(secrets, name=bad))
    secret = post("/api/admin/secrets", {"name": bad, "type": "openai", "value": "sk-x"})
    for response in (job, secret):
        assert response.status_code in (201, 400), (response.status_code, response.content[:300])
    if "\x00" in bad or "\ud800" in bad:
        _clear_4xx(job, 400)
        _clear_4xx(secret, 400)


@pytest.mark.parametrize("job_id", [HUGE, HUGER, 2**31, 0])
def test_ids_beyond_integer_range_are_404(api, job_id):
    for method, url in (
        ("GET", f"/api/jobs/{job_id}"),
        ("PUT", f"/api/jobs/{job_id}"),
        ("DELETE", f"/api/jobs/{job_id}"),
        ("POST", f"/api/jobs/{job_id}/pause"),
        ("POST", f"/api/jobs/{job_id}/resume"),
        ("GET", f"/api/jobs/{job_id}/logs"),
        ("GET", f"/api/admin/secrets/{job_id}"),
        ("DELETE", f"/api/admin/secrets/{job_id}"),
    ):
        _clear_4xx(api.generic(method, url, "{}", content_type="application/json"), 404)


@pytest.mark.parametrize("value", [HUGE, HUGER, -HUGER, 1.5, "one", True, None])
def test_secret_ids_beyond_integer_range_are_refused(api, secrets, value):
    response = api.post("/api/jobs", _job_body(secrets, openai_secret_id=value), format="json")
    _clear_4xx(response, 400, 404)
    assert not PollingJob.objects.exists()


@pytest.mark.parametrize(
    "query",
    [f"limit={HUGER}", f"offset={HUGER}", "limit=-1", "limit=1e3", f"job={HUGER}", "level=nope", "limit=%00"],
)
def test_query_parameters_out_of_range_are_400(api, query):
    for url in ("/api/logs", "/api/jobs"):
        response = api.get(f"{url}?{query}")
        if url == "/api/jobs" and query.startswith(("job=", "level=")):
            assert response.status_code == 200  # not a parameter of this endpoint
            continue
        _clear_4xx(response, 400)


def test_poll_interval_beyond_integer_range_is_400(api, secrets):
    for value in (HUGER, -HUGER, 2**31):
        _clear_4xx(api.post("/api/jobs", _job_body(secrets, poll_interval_seconds=value), format="json"), 400)
    assert not PollingJob.objects.exists()


def test_unknown_api_paths_answer_json_404(api):
    for url in ("/api/nope", "/api/jobs/abc", "/api/jobs/1/unknown", "/api/admin/secrets/-1"):
        _clear_4xx(api.get(url), 404)


@pytest.mark.parametrize(
    "url",
    ["/api/jobs?search=a%00b", "/api/scripts?search=%00", "/api/scripts?folder=x%00", "/api/runs?search=%00"],
)
def test_a_nul_character_in_a_text_parameter_is_a_400_not_a_database_error(api, url):
    # PostgreSQL refuses NUL in a query (schemathesis found the 500); SQLite would just find nothing.
    response = api.get(url)
    assert response.status_code == 400, response.content
    assert "must not contain NUL characters" in response.json()["detail"]
