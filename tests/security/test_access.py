"""Who may call what. Every URL pattern is enumerated from the URL conf, so a new endpoint
without protection fails here until it is protected or deliberately listed as public."""

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
# Public on purpose (docs/RELIABILITY.md, "Security"): (route without trailing slash, methods).
PUBLIC = {
    "api/health": {"get"},  # API.md: the one public API endpoint
    "api/webhooks/openai": {"post"},  # OpenAI calls it; the Standard Webhooks signature is the auth
    "api/schema": {"get"},  # read-only description of the API, no data
    "docs": {"get"},
    "redoc": {"get"},
    "web": {"get"},  # the page shell; its data comes from the protected API
    "web/login": {"post"},
    "web/logout": {"post"},
    "web/session": {"get"},  # only says whether this browser is signed in
}
# Only API keys authenticate here (the run records which key asked): a staff token or session is
# "no credentials" (401), not a non-staff user (403).
API_KEYS_ONLY = {"api/scripts/<slug:slug>/trigger"}


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p


def _concrete(route: str) -> str:
    return "/" + re.sub(r"<(?:\w+:)?\w+>", "1", route)


def _methods(pattern: URLPattern) -> set[str]:
    actions = getattr(pattern.callback, "actions", None)
    if actions is not None:  # a viewset route: the methods the router bound on it
        return set(actions) & set(METHODS)
    view = getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)
    if view is not None:
        return {m for m in METHODS if hasattr(view, m)}
    return set(METHODS)  # a function view: try everything


ROUTES = [(route, p) for route, p in _walk(get_resolver().url_patterns) if not route.startswith("admin/")]


def _refusals(pattern: URLPattern) -> set[int]:
    # A DRF view checks credentials before the method; a plain Django view may answer 405 first.
    drf = getattr(pattern.callback, "cls", None) is not None
    return {401, 403} if drf else {401, 403, 405, 302}


CASES = [
    pytest.param(_concrete(route), method, _refusals(pattern), id=f"{method.upper()} /{route}")
    for route, pattern in ROUTES
    for method in sorted(_methods(pattern))
    if method not in PUBLIC.get(route.rstrip("/"), set())
]


def test_the_url_conf_is_what_this_file_expects():
    routes = {route.rstrip("/") for route, _ in ROUTES}
    assert "api/jobs" in routes and "api/admin/secrets/<int:secret_id>" in routes
    assert {"api/scripts", "api/scripts/<int:pk>/run", "api/runs/<int:pk>/output", "api/pythons"} <= routes
    unknown = set(PUBLIC) - routes
    assert not unknown, f"PUBLIC lists routes that no longer exist: {unknown}"
    assert len(CASES) > 20


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(
        username="viewer", password="a-long-test-password", is_staff=False
    )


@pytest.mark.parametrize(("url", "method", "refusals"), CASES)
def test_anonymous_is_refused(url, method, refusals):
    response = getattr(APIClient(), method)(url, {}, format="json")
    assert response.status_code in refusals, response.status_code
    if response.status_code == 302:
        assert "login" in response["Location"]
    assert not _leaks_data(response)


@pytest.mark.parametrize(("url", "method", "refusals"), CASES)
def test_a_signed_in_non_staff_user_is_refused(url, method, refusals, user):
    by_token = APIClient()
    by_token.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    by_session = APIClient()
    by_session.force_login(user)
    for client in (by_token, by_session):
        response = getattr(client, method)(url, {}, format="json")
        expected = refusals if _route(url) in API_KEYS_ONLY else refusals - {401}
        assert response.status_code in expected, response.status_code


def _route(url: str) -> str:
    return next(route.rstrip("/") for route, _ in ROUTES if _concrete(route) == url)


def _leaks_data(response) -> bool:
    body = response.content.decode(errors="replace")
    return any(
        key in body
        for key in (
            '"jobs"',
            '"secrets"',
            '"logs"',
            '"total_jobs"',
            '"version"',
            '"scripts"',
            '"runs"',
            '"pythons"',
        )
    )


def test_anonymous_api_calls_get_401_with_a_token_challenge():
    response = APIClient().get("/api/jobs")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")


def test_health_is_public_and_says_nothing_secret():
    response = APIClient().get("/api/health")
    assert response.status_code in (200, 503)
    assert set(response.json()) >= {"status", "database", "version"}


def test_the_public_schema_is_read_only():
    client = APIClient()
    assert client.get("/api/schema").status_code == 200
    assert client.post("/api/schema", {}).status_code in (401, 403, 405)


def test_admin_is_behind_login(admin_user):
    client = Client()
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    for path in ("/admin/polling/pollingjob/", "/admin/secrets_vault/secret/", "/admin/auth/user/"):
        response = client.get(path)
        assert response.status_code == 302 and "/admin/login/" in response["Location"], path
    client.force_login(admin_user)
    assert client.get("/admin/").status_code == 200


def test_admin_refuses_a_non_staff_user(user):
    client = Client()
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_csrf_is_enforced_for_session_writes(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.get("/api/jobs").status_code == 200  # reads need no token
    for method, url in (
        ("post", "/api/jobs"),
        ("post", "/api/admin/secrets"),
        ("delete", "/api/jobs/1"),
        ("put", "/api/jobs/1"),
        ("post", "/api/jobs/1/pause"),
        ("post", "/web/logout"),
    ):
        response = getattr(client, method)(url, "{}", content_type="application/json")
        assert response.status_code == 403, (method, url, response.status_code)
        assert "CSRF" in response.content.decode(), (method, url)
    client.get("/web")  # the page sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post("/api/jobs", "{}", content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 400  # past CSRF, refused only for the empty body


def test_the_web_login_needs_a_csrf_token(admin_user):
    client = Client(enforce_csrf_checks=True)
    body = '{"username": "admin", "password": "a-strong-test-password"}'
    assert client.post("/web/login", body, content_type="application/json").status_code == 403
    client.get("/web")
    token = client.cookies["csrftoken"].value
    response = client.post("/web/login", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200 and response.json()["authenticated"] is True


def test_token_auth_needs_no_csrf_token(admin_user):
    client = APIClient(enforce_csrf_checks=True)
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=admin_user).key}")
    assert client.post("/api/jobs", {}, format="json").status_code == 400
