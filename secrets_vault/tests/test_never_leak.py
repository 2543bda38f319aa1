"""A canary secret value is planted, every path that touches secrets runs, and the canary
must appear nowhere: responses, HTML, command output, logs, job logs, errors, the database."""

import io
import logging
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from polling.models import PollingJob, PollingLog
from polling.services.polls import job_poll

pytestmark = pytest.mark.django_db

OPENAI_CANARY = "sk-canary-OPENAI-5f1e2d3c4b5a69788796a5b4c3d2e1f0"
KEBOOLA_CANARY = "kbc-canary-KEBOOLA-0a1b2c3d4e5f60718293a4b5c6d7e8f9"
CANARIES = (OPENAI_CANARY, KEBOOLA_CANARY)


class Collector:
    def __init__(self):
        self.chunks: list[str] = []

    def add(self, value) -> None:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        self.chunks.append(str(value))

    def assert_clean(self) -> None:
        text = "\n".join(self.chunks)
        for canary in CANARIES:
            assert canary not in text
            assert canary[:20] not in text  # not even a prefix, as OpenAI's own errors show


@pytest.fixture
def everything_logged(caplog):
    caplog.set_level(logging.DEBUG)
    for name in (
        "httpx",
        "httpx2",
        "httpcore",
        "openai",
        "urllib3",
        "celery",
        "django",
        "teckochecker",
        "polling",
    ):
        logging.getLogger(name).setLevel(logging.DEBUG)
    return caplog


def test_canary_never_leaks(api, fake_openai_settings, everything_logged, admin_user, client, capsys):
    fake = fake_openai_settings
    seen = Collector()

    def call(method, *args, **kwargs):
        response = getattr(api, method)(*args, **kwargs)
        seen.add(response.content)
        seen.add(dict(response.headers))
        return response

    openai_id = call(
        "post", "/api/admin/secrets", {"name": "o", "type": "openai", "value": OPENAI_CANARY}, format="json"
    ).json()["id"]
    keboola_id = call(
        "post",
        "/api/admin/secrets",
        {"name": "k", "type": "keboola", "value": f"  {KEBOOLA_CANARY}\n"},
        format="json",
    ).json()["id"]
    call(
        "post", "/api/admin/secrets", {"name": "o", "type": "openai", "value": OPENAI_CANARY}, format="json"
    )  # 409
    call(
        "post", "/api/admin/secrets", {"name": "x", "type": "bogus", "value": OPENAI_CANARY}, format="json"
    )  # 400
    call(
        "post",
        "/api/admin/secrets",
        {"name": "\x00", "type": "openai", "value": OPENAI_CANARY + "\x07"},
        format="json",
    )
    call("get", "/api/admin/secrets")
    call("get", f"/api/admin/secrets/{openai_id}")
    call("get", "/api/admin/secrets/", HTTP_ACCEPT="text/html")  # browsable API page

    fake.add_batch("batch_leak_a", outcome="completed")
    fake.add_batch("batch_leak_b", outcome="failed")
    job = call(
        "post",
        "/api/jobs",
        {
            "name": "leak check",
            "batch_ids": ["batch_leak_a", "batch_leak_b"],
            "openai_secret_id": openai_id,
            "keboola_secret_id": keboola_id,
            "keboola_stack_url": fake.stack_url,
            "keboola_component_id": "c",
            "keboola_configuration_id": "1",
            "poll_interval_seconds": 30,
        },
        format="json",
    ).json()
    # Errors first (bad key, rate limit, Keboola rejecting the token), then success.
    fake.reject_openai_key(OPENAI_CANARY)
    job_poll(job_id=job["id"], force=True)
    fake.invalid_openai_keys.clear()
    fake.fail("openai.retrieve", "429", times=1, retry_after=1)
    job_poll(job_id=job["id"], force=True)
    fake.fail("keboola.create", "500", times=1)
    job_poll(job_id=job["id"], force=True)
    PollingJob.objects.filter(pk=job["id"]).update(trigger_started_at=timezone.now() - timedelta(minutes=10))
    assert job_poll(job_id=job["id"], force=True).outcome == "triggered"

    call("get", f"/api/jobs/{job['id']}", {"include_logs": "true"})
    call("get", "/api/jobs")
    call("get", "/api/logs")
    call("get", "/api/stats")
    call("get", "/api/schema")
    call("delete", f"/api/admin/secrets/{openai_id}")  # the job finished, so this is allowed

    # Admin pages.
    client.force_login(admin_user)
    for url in (
        "/admin/secrets_vault/secret/",
        f"/admin/secrets_vault/secret/{keboola_id}/change/",
        "/admin/secrets_vault/secret/add/",
        "/admin/polling/pollingjob/",
        f"/admin/polling/pollingjob/{job['id']}/change/",
        "/admin/polling/pollinglog/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        seen.add(response.content)

    # Every `secret` command.
    for args in (["list"], ["list", "--json"], ["rotate-keys"], ["delete", "k", "--force"]):
        out, err = io.StringIO(), io.StringIO()
        try:
            call_command("secret", *args, stdout=out, stderr=err)
        except (SystemExit, Exception) as exc:  # refusals are fine; their text is checked too
            seen.add(repr(exc))
        seen.add(out.getvalue())
        seen.add(err.getvalue())

    # The fake saw the real values on the wire; its request log keeps fingerprints only.
    seen.add(fake.requests())
    seen.add(fake.keboola_jobs())
    seen.add(list(PollingLog.objects.values_list("message", flat=True)))
    seen.add(list(PollingJob.objects.values_list("last_error", flat=True)))
    for record in everything_logged.records:
        seen.add(record.getMessage())
        if record.exc_info:
            seen.add(logging.Formatter().formatException(record.exc_info))
    captured = capsys.readouterr()
    seen.add(captured.out)
    seen.add(captured.err)
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, type, value FROM secrets_vault_secret")
        seen.add([(n, t, bytes(v)) for n, t, v in cursor.fetchall()])
    assert len(fake.keboola_jobs()) == 1
    seen.assert_clean()
