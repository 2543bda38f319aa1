"""A canary secret is given to a script as a variable; the script prints it, fails with it in its
traceback and exits non-zero. The canary must reach the script's process and appear nowhere of
ours: API answers, admin pages, notifications, logs, stored runs and scripts."""

import hashlib
import logging

import pytest
from django.db import connection
from django.test import Client

from polling.services.notifications import script_run_message
from scripts import services
from scripts.models import ScriptRun
from scripts.services.environments import environment_build_now
from secrets_vault.services import secret_create

pytestmark = pytest.mark.django_db

CANARY = "canary-SCRIPTS-9d8c7b6a5f4e3d2c1b0a"
# The code names only the canary's hash: the code itself is shown everywhere.
CODE = f"""\
import hashlib, os, sys
token = os.environ["API_TOKEN"]
print("reached" if hashlib.sha256(token.encode()).hexdigest() == {hashlib.sha256(CANARY.encode()).hexdigest()!r} else "missing")
print("the token is", token)
print(token, file=sys.stderr)
raise RuntimeError("bad token " + token)
"""


def test_a_script_s_secret_never_leaks(api, admin_user, sent, django_capture_on_commit_callbacks, caplog):
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    def call(method, url, *args, **kwargs):
        response = getattr(api, method)(url, *args, **kwargs)
        seen.append(response.content.decode())
        return response

    secret_create(name="api-token", type="http_header", value=CANARY)
    with django_capture_on_commit_callbacks(execute=True):
        script = call(
            "post",
            "/api/scripts",
            {
                "name": "Leaky",
                "code": CODE,
                "env": [{"name": "API_TOKEN", "secret": "api-token"}],
                "notify": {"on_failure": True, "emails": ["ops@example.com"]},
            },
            format="json",
        ).json()
    (script_id, token), _ = sent["build"][-1]
    assert environment_build_now(script_id=script_id, token=token) == "ready"
    run = call("post", f"/api/scripts/{script['id']}/run").json()
    services.run_execute(run_id=run["id"])

    detail = call("get", f"/api/runs/{run['id']}").json()
    assert detail["state"] == "failed" and detail["output"].startswith("reached\n")  # it got there
    for url in (
        "/api/scripts",
        f"/api/scripts/{script['id']}",
        f"/api/scripts/{script['id']}/runs",
        "/api/runs",
        f"/api/runs/{run['id']}/output",
        "/api/runs?search=canary",
    ):
        call("get", url)
    call("patch", f"/api/scripts/{script['id']}", {"code": CODE + "\n"}, format="json")

    browser = Client()
    browser.force_login(admin_user)
    for url in (
        f"/admin/scripts/script/{script['id']}/change/",
        f"/admin/scripts/scriptrun/{run['id']}/change/",
        "/admin/scripts/scriptrun/",
    ):
        page = browser.get(url)
        assert page.status_code == 200, url
        seen.append(page.content.decode())

    stored = ScriptRun.objects.get(pk=run["id"])
    seen.append(repr(script_run_message(stored, "script_failed")))
    with connection.cursor() as cursor:  # every text the scripts tables hold
        for table in ("scripts_scriptrun", "scripts_script", "scripts_scriptenvvar"):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 (fixed table names)
            seen.append(repr(cursor.fetchall()))
    seen.append(caplog.text)

    text = "\n".join(seen)
    assert "[secret API_TOKEN]" in text  # the scrubbed output is there ...
    assert CANARY not in text and CANARY[:20] not in text  # ... the value nowhere
