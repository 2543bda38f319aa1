"""Following the Keboola job to its end, notifications, and the webhook action."""

import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.utils import timezone

from polling.models import JobStatus, PollingJob, PollingLog, TriggerState
from polling.services import job_create
from polling.services.follow import keboola_follow_due
from polling.services.notifications import notification_deliver
from polling.services.polls import job_poll
from polling.tests.factories import PollingJobFactory
from secrets_vault.services import secret_create

pytestmark = pytest.mark.django_db


class Receiver:
    """A tiny HTTP server recording JSON POSTs (a webhook receiver for tests)."""

    def __init__(self, status=200):
        self.calls, self.status = [], status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.calls.append({"headers": dict(self.headers), "body": body})
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _triggered_job(fake, **kwargs):
    fake.add_batch("batch_f", outcome="completed")
    job = PollingJobFactory(batch_ids=["batch_f"], keboola_stack_url=fake.stack_url, **kwargs)
    assert job_poll(job_id=job.pk).outcome == "triggered"
    job.refresh_from_db()
    return job


@pytest.mark.parametrize("outcome, level", [("success", "info"), ("error", "error")])
def test_keboola_job_is_followed_until_it_finishes(fake_openai_settings, outcome, level):
    fake = fake_openai_settings
    fake.configure_keboola(start_after=0.2, finish_after=0.4, outcome=outcome)
    job = _triggered_job(fake)
    assert job.keboola_job_status == "created" and job.keboola_next_follow_at is not None
    time.sleep(0.5)
    PollingJob.objects.filter(pk=job.pk).update(keboola_next_follow_at=timezone.now())

    assert keboola_follow_due() == 1
    job.refresh_from_db()
    assert job.keboola_job_status == outcome and job.keboola_job_finished_at is not None
    assert job.keboola_next_follow_at is None
    assert job.status == JobStatus.COMPLETED  # the trigger itself succeeded
    assert PollingLog.objects.filter(job=job, status="keboola_finished", level=level).exists()
    assert keboola_follow_due() == 0  # nothing more to follow


def test_a_running_keboola_job_is_checked_again_later(fake_openai_settings):
    fake = fake_openai_settings
    fake.configure_keboola(start_after=0, finish_after=3600)
    job = _triggered_job(fake)
    PollingJob.objects.filter(pk=job.pk).update(keboola_next_follow_at=timezone.now())
    keboola_follow_due()
    job.refresh_from_db()
    assert job.keboola_job_status == "processing" and job.keboola_next_follow_at > timezone.now()


def test_a_keboola_job_is_followed_by_one_worker_at_a_time(fake_openai_settings):
    from datetime import timedelta

    from polling.services.follow import keboola_follow

    fake = fake_openai_settings
    fake.configure_keboola(start_after=0, finish_after=3600)
    job = _triggered_job(fake)
    now = timezone.now()
    PollingJob.objects.filter(pk=job.pk).update(
        keboola_next_follow_at=now, lease_token="other-follower", lease_expires_at=now + timedelta(seconds=60)
    )
    assert keboola_follow_due() == 0 and keboola_follow(job_id=job.pk) is False
    assert fake.requests("keboola.get") == []
    # The other follower died: once its lease lapses the job is followed again, and released.
    PollingJob.objects.filter(pk=job.pk).update(lease_expires_at=now - timedelta(seconds=1))
    assert keboola_follow_due() == 1
    job.refresh_from_db()
    assert len(fake.requests("keboola.get")) == 1
    assert job.lease_token == "" and job.keboola_next_follow_at > timezone.now()


def test_a_failed_look_up_backs_off_and_releases_the_job(fake_openai_settings):
    fake = fake_openai_settings
    job = _triggered_job(fake)
    fake.fail("keboola.get", "500", times=1)
    PollingJob.objects.filter(pk=job.pk).update(keboola_next_follow_at=timezone.now())
    before = timezone.now()
    assert keboola_follow_due() == 1
    job.refresh_from_db()
    assert job.keboola_follow_failures == 1 and job.lease_token == ""
    delay = (job.keboola_next_follow_at - before).total_seconds()
    assert 30 * 0.8 - 1 <= delay <= 30 * 1.2 + 1


def test_finish_and_failure_notify_by_email_and_signed_webhook(
    fake_openai_settings, settings, receiver, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NOTIFY_WEBHOOK_SECRET = "shared-hmac-key"
    fake = fake_openai_settings
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = _triggered_job(fake, notify_emails="ops@example.com", notify_webhook_url=receiver.url)
    assert len([c for c in callbacks if "_send" in c.__qualname__]) >= 2  # email + webhook queued

    notification_deliver(job_id=job.pk, event="finished", channel="email")
    notification_deliver(job_id=job.pk, event="finished", channel="webhook")
    assert mail.outbox[0].to == ["ops@example.com"] and "finished" in mail.outbox[0].subject
    call = receiver.calls[0]
    payload = json.loads(call["body"])
    assert payload["event"] == "finished" and payload["status"] == "completed" and "text" in payload
    expected = "sha256=" + hmac.new(b"shared-hmac-key", call["body"], hashlib.sha256).hexdigest()
    assert call["headers"]["X-TeckoChecker-Signature"] == expected


def test_failed_notification_is_logged_on_the_job(settings):
    from polling.tasks import deliver_notification

    job = PollingJobFactory(notify_webhook_url="http://127.0.0.1:9/nothing-listens")
    deliver_notification.apply(args=[job.pk, "failed", "webhook"], retries=5)
    assert PollingLog.objects.filter(job=job, status="notify_failed").exists()


def test_webhook_action_posts_the_metadata_once(fake_openai_settings, receiver):
    fake = fake_openai_settings
    fake.add_batch("batch_w1", outcome="completed")
    fake.add_batch("batch_w2", outcome="cancelled")
    header_secret = secret_create(name="hdr", type="http_header", value="header-value-123")
    openai_secret = secret_create(name="o", type="openai", value="sk-w")
    job = job_create(
        name="to webhook",
        batch_ids=["batch_w1", "batch_w2"],
        openai_secret_id=openai_secret.pk,
        action_type="webhook",
        action_url=receiver.url,
        action_secret_id=header_secret.pk,
        poll_interval_seconds=60,
    )
    assert job_poll(job_id=job.pk).outcome == "triggered"
    assert job_poll(job_id=job.pk, force=True).outcome == "skipped"
    assert len(receiver.calls) == 1
    call = receiver.calls[0]
    assert call["headers"]["X-TeckoChecker-Secret"] == "header-value-123"
    assert call["headers"]["Idempotency-Key"] == f"teckochecker-job-{job.pk}"
    body = json.loads(call["body"])
    assert body["batch_ids_completed"] == ["batch_w1"] and body["batch_ids_failed"] == ["batch_w2"]
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED_WITH_FAILURES and job.trigger_state == TriggerState.DONE
    assert fake.keboola_jobs() == []


def test_webhook_action_validation(api, settings):
    openai_secret = secret_create(name="o", type="openai", value="sk")
    base = {
        "name": "w",
        "batch_ids": ["batch_1"],
        "openai_secret_id": openai_secret.pk,
        "action_type": "webhook",
    }
    settings.ALLOW_LOCAL_URLS = False
    for url in ("", "http://example.com/hook", "ftp://x", "http://127.0.0.1:9/hook"):
        response = api.post("/api/jobs", {**base, "action_url": url}, format="json")
        assert response.status_code == 400 and "action_url" in response.json()["errors"], url
    assert api.post("/api/jobs", {**base, "action_type": "email"}, format="json").status_code == 400
    response = api.post("/api/jobs", {**base, "action_url": "https://hooks.example.com/x"}, format="json")
    assert response.status_code == 201 and response.json()["action_type"] == "webhook"
    bad_email = api.post(
        "/api/jobs", {**base, "action_url": "https://h.example.com", "notify_emails": "nope"}, format="json"
    )
    assert bad_email.status_code == 400 and "notify_emails" in bad_email.json()["errors"]
