"""/api/admin/keys, and what a key may do on the rest of the API (apikeys/authentication.py)."""

import pytest

from apikeys.models import ApiKey
from scripts.tests.factories import ScriptFactory

pytestmark = pytest.mark.django_db


def test_create_shows_the_key_once_then_only_its_prefix(api):
    script = ScriptFactory(slug="nightly")
    created = api.post(
        "/api/admin/keys", {"name": "deploy", "script": "nightly", "expires_at": "30d"}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["key"].startswith(body["prefix"]) and body["scope"] == "scripts:trigger"
    assert body["script"] == script.pk and body["owner"] == "admin" and body["state"] == "active"
    listing = api.get("/api/admin/keys")
    one = api.get(f"/api/admin/keys/{body['id']}")
    for response in (listing, one):
        assert response.status_code == 200
        assert body["key"] not in response.content.decode() and body["prefix"] in response.content.decode()


def test_create_validates_each_field(api):
    response = api.post(
        "/api/admin/keys", {"name": "", "scope": "root", "expires_at": "soon", "extra": 1}, format="json"
    )
    assert response.status_code == 400 and "extra" in response.json()["errors"]
    response = api.post("/api/admin/keys", {"name": "x", "script": "missing"}, format="json")
    assert response.status_code == 400 and response.json()["errors"]["script"] == [
        "Script 'missing' not found."
    ]
    response = api.post("/api/admin/keys", {"name": "", "scope": "root", "expires_at": "soon"}, format="json")
    assert set(response.json()["errors"]) == {"name", "scope", "expires_at"}


def test_revoke_stops_the_key_at_once(api, bearer):
    body = api.post("/api/admin/keys", {"name": "full", "scope": "full"}, format="json").json()
    assert bearer(body["key"]).get("/api/scripts").status_code == 200
    revoked = api.post(f"/api/admin/keys/{body['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    refused = bearer(body["key"]).get("/api/scripts")
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert api.post(f"/api/admin/keys/{body['id']}/revoke").status_code == 409
    assert api.get("/api/admin/keys?active=true").json()["total"] == 0


def test_a_full_key_uses_the_api_as_its_owner(make_key, bearer):
    _key, raw = make_key(scope="full")
    client = bearer(raw)
    assert client.get("/api/scripts").status_code == 200
    created = client.post("/api/scripts", {"name": "By key"}, format="json")
    assert created.status_code == 201  # no CSRF: a key is not a session


def test_a_trigger_key_cannot_use_the_rest_of_the_api(make_key, bearer):
    _key, raw = make_key()
    client = bearer(raw)
    for method, url in [
        ("get", "/api/scripts"),
        ("get", "/api/jobs"),
        ("get", "/api/runs"),
        ("post", "/api/scripts"),
        ("get", "/api/admin/secrets"),
        ("get", "/api/stats"),
    ]:
        response = getattr(client, method)(url)
        assert response.status_code == 403, url
        assert "may only trigger scripts" in response.json()["detail"]


def test_no_key_may_manage_keys(make_key, bearer):
    _key, raw = make_key(scope="full")
    response = bearer(raw).post("/api/admin/keys", {"name": "more", "scope": "full"}, format="json")
    assert response.status_code == 403 and "cannot be used here" in response.json()["detail"]
    assert ApiKey.objects.count() == 1


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer a b", "Bearer tck_wrong", "Bearer \u00e9t\u00e9"],
)
def test_malformed_or_wrong_bearer_headers_get_401(make_key, anon, header):
    response = anon.get("/api/scripts", HTTP_AUTHORIZATION=header.encode().decode("latin-1"))
    assert response.status_code == 401
    assert response.json()["detail"]


@pytest.mark.parametrize("parameter", ["key", "api_key", "apikey", "access_token"])
def test_a_key_in_the_query_string_is_refused(make_key, anon, parameter):
    _key, raw = make_key(scope="full")
    response = anon.get(f"/api/scripts?{parameter}={raw}")
    assert response.status_code == 400
    assert "Authorization header" in response.json()["detail"] and raw not in response.content.decode()


def test_the_rate_limit_answers_429_with_retry_after(make_key, bearer, settings):
    settings.API_KEY_RATE_LIMIT = "3/day"
    _key, raw = make_key(scope="full")
    client = bearer(raw)
    codes = [client.get("/api/scripts").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    refused = client.get("/api/scripts")
    assert 0 < int(refused["Retry-After"]) <= 86400


def test_staff_tokens_work_as_before(api):
    assert api.get("/api/scripts").status_code == 200
