import json

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "a-strong-test-password"


@pytest.fixture(autouse=True)
def _fresh_login_throttle():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def csrf_client():
    return Client(enforce_csrf_checks=True)


def _token(client: Client) -> str:
    client.get("/web")
    return client.cookies["csrftoken"].value


def _login(client: Client, username: str, password: str, token: str | None = None):
    headers = {"HTTP_X_CSRFTOKEN": token} if token else {}
    return client.post(
        "/web/login",
        data=json.dumps({"username": username, "password": password}),
        content_type="application/json",
        **headers,
    )


@pytest.mark.parametrize("path", ["/web", "/web/"])
def test_page_is_served_at_both_paths_without_redirect(client, path):
    response = client.get(path)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<title>TeckoChecker</title>" in body
    assert "/static/web/js/app.js" in body and 'type="module"' in body
    assert "csrftoken" in response.cookies


@pytest.mark.parametrize(
    "asset",
    [
        "web/css/terminal.css",
        "web/js/app.js",
        "web/js/api.js",
        "web/js/dom.js",
        "web/js/jobs.js",
        "web/js/job-form.js",
        "web/js/job-view.js",
        "web/js/scripts.js",
        "web/js/script-detail.js",
        "web/js/script-env.js",
        "web/js/script-runs.js",
        "web/js/script-schedule.js",
        "web/js/script-settings.js",
        "web/js/editor.js",
        "web/vendor/codemirror.js",
        "web/js/secrets.js",
        "web/js/monitor.js",
        "web/js/logs.js",
        "web/js/system.js",
        "web/js/bundle.js",
        "web/js/format.js",
        "web/js/theme-init.js",
    ],
)
def test_static_assets_are_served(client, asset):
    response = client.get(f"/static/{asset}")
    assert response.status_code == 200
    content = b"".join(response.streaming_content) if response.streaming else response.content
    assert content


def test_no_script_inserts_html_strings():
    """Data goes in as text: the page's scripts never use innerHTML and friends."""
    from pathlib import Path

    for script in (Path(__file__).resolve().parent.parent / "static" / "web" / "js").glob("*.js"):
        source = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert sink not in source, f"{script.name} uses {sink}"


def test_the_editor_bundle_exports_what_the_page_imports():
    """A rebuilt bundle (web/editor-bundle) that lost a name would break the Scripts tab."""
    import re
    from pathlib import Path

    static = Path(__file__).resolve().parent.parent / "static" / "web"
    editor = (static / "js" / "editor.js").read_text()
    imported = re.search(r"import \{([^}]*)\} from \"\.\./vendor/codemirror\.js\"", editor).group(1)
    wanted = {name.split(" as ")[0].strip() for name in imported.split(",") if name.strip()}
    bundle = (static / "vendor" / "codemirror.js").read_text()
    exported = re.search(r"export\{([^}]*)\};?\s*$", bundle).group(1)
    names = {item.split(" as ")[-1].strip() for item in exported.split(",")}
    assert wanted and wanted <= names, sorted(wanted - names)
    assert len(bundle) < 600_000, "keep the bundle to Python + the basic setup"


def test_login_signs_in_a_staff_user(csrf_client, admin_user):
    response = _login(csrf_client, "admin", PASSWORD, _token(csrf_client))
    assert response.status_code == 200
    assert response.json() == {"authenticated": True, "username": "admin"}
    assert csrf_client.get("/web/session").json()["authenticated"] is True
    assert csrf_client.get("/api/stats").status_code == 200


def test_login_rejects_a_wrong_password(csrf_client, admin_user):
    response = _login(csrf_client, "admin", "wrong", _token(csrf_client))
    assert response.status_code == 403
    assert "Wrong username or password" in response.json()["detail"]
    assert csrf_client.get("/web/session").json()["authenticated"] is False


def test_login_rejects_a_non_staff_user(csrf_client, django_user_model):
    django_user_model.objects.create_user(username="bob", password=PASSWORD, is_staff=False)
    response = _login(csrf_client, "bob", PASSWORD, _token(csrf_client))
    assert response.status_code == 403
    assert csrf_client.get("/web/session").json()["authenticated"] is False


def test_login_accepts_a_form_post(csrf_client, admin_user):
    token = _token(csrf_client)
    response = csrf_client.post(
        "/web/login", {"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 200


def test_login_needs_both_fields(csrf_client):
    response = _login(csrf_client, "", "", _token(csrf_client))
    assert response.status_code == 400
    assert response.json()["detail"]


def test_login_without_csrf_token_is_refused(csrf_client, admin_user):
    _token(csrf_client)
    response = _login(csrf_client, "admin", PASSWORD)
    assert response.status_code == 403
    assert csrf_client.get("/web/session").json()["authenticated"] is False


def test_logout_needs_csrf_and_ends_the_session(csrf_client, admin_user):
    token = _token(csrf_client)
    assert _login(csrf_client, "admin", PASSWORD, token).status_code == 200
    token = csrf_client.cookies["csrftoken"].value  # rotated at login
    assert csrf_client.post("/web/logout").status_code == 403
    assert csrf_client.get("/web/session").json()["authenticated"] is True
    assert csrf_client.post("/web/logout", HTTP_X_CSRFTOKEN=token).status_code == 200
    assert csrf_client.get("/web/session").json()["authenticated"] is False


def test_repeated_failures_are_throttled(csrf_client, admin_user):
    token = _token(csrf_client)
    for _ in range(10):
        assert _login(csrf_client, "admin", "wrong", token).status_code == 403
    response = _login(csrf_client, "admin", PASSWORD, token)
    assert response.status_code == 429
    assert response["Retry-After"]


def test_config_is_for_staff_only_and_holds_no_secret(client, admin_user, settings):
    assert client.get("/web/config").status_code == 403
    client.force_login(admin_user)
    response = client.get("/web/config")
    assert response.status_code == 200
    text = response.content.decode()
    for secret in (settings.SECRET_KEY, *settings.FERNET_KEYS):
        assert secret not in text
    assert response.json()["version"] == settings.VERSION
    scripts = response.json()["scripts"]
    assert (scripts["queue"], scripts["sandbox"]) == (settings.SCRIPTS_QUEUE, settings.SCRIPTS_SANDBOX)


def test_get_on_login_is_not_allowed(client):
    assert client.get("/web/login").status_code == 405
