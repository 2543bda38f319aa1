"""Telling people when a job finishes or fails (polling/services/notifications.py)."""

import hashlib
import hmac
import json

import pytest
from django.core import mail

from polling.models import PollingLog
from polling.services.notifications import notification_deliver
from polling.tests.factories import PollingJobFactory, triggered_job

pytestmark = pytest.mark.django_db


def test_finish_and_failure_notify_by_email_and_signed_webhook(
    fake_openai_settings, settings, receiver, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NOTIFY_WEBHOOK_SECRET = "shared-hmac-key"
    fake = fake_openai_settings
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = triggered_job(fake, notify_emails="ops@example.com", notify_webhook_url=receiver.url)
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
