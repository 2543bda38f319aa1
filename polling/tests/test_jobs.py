"""Creating, changing, pausing, resuming, checking and failing jobs (polling/services/jobs.py),
called as the API, the admin and the CLI call them."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from polling.models import JobStatus, PollingJob, PollingLog, TriggerState
from polling.services import (
    JobStateConflict,
    job_check_now,
    job_create,
    job_fail,
    job_pause,
    job_resume,
    job_update,
)
from polling.tests.factories import PollingJobFactory
from secrets_vault.services import secret_create
from secrets_vault.tests.factories import KeboolaSecretFactory, OpenAISecretFactory
from teckochecker.errors import ValidationFailed

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """The checks the services queue (sent after their transaction commits)."""
    from polling import tasks

    sent = []

    def send(args, kwargs, **_):
        # A forced check carries when it was asked (job_poll skips it if a read came since).
        if kwargs.get("force"):
            assert abs(kwargs.pop("asked_at") - time.time()) < 60
        sent.append((args, kwargs))

    monkeypatch.setattr(tasks.poll_job, "apply_async", send)
    return sent


def _create(**overrides):
    fields = {
        "name": "Nightly",
        "batch_ids": ["batch_a1", "batch_b2"],
        "openai_secret_id": OpenAISecretFactory().pk,
        "keboola_secret_id": KeboolaSecretFactory().pk,
        "keboola_stack_url": "https://connection.eu-central-1.keboola.com",
        "keboola_component_id": "kds-team.app-custom-python",
        "keboola_configuration_id": "123456",
        "poll_interval_seconds": 60,
        **overrides,
    }
    return job_create(**fields)


def test_create_makes_the_job_due_at_once_and_queues_a_forced_check_after_commit(
    queued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = _create()
        assert queued == []  # nothing reaches a worker before the job is committed
    assert queued == [([job.pk], {"force": True})]
    assert job.status == JobStatus.ACTIVE and job.next_check_at <= timezone.now()
    assert list(job.batches.values_list("batch_id", flat=True)) == ["batch_a1", "batch_b2"]
    assert PollingLog.objects.filter(job=job, status="created").count() == 1


def test_create_writes_nothing_when_any_field_is_invalid(queued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationFailed) as exc:
        _create(name="", batch_ids=["not a batch"])
    assert {"name", "batch_ids"} <= set(exc.value.errors)
    assert not PollingJob.objects.exists() and not PollingLog.objects.exists() and queued == []


def test_a_new_interval_counts_from_the_last_check_but_backoff_keeps_its_delay():
    checked = timezone.now() - timedelta(seconds=10)
    job = PollingJobFactory(poll_interval_seconds=120, last_check_at=checked)
    job = job_update(job=job, poll_interval_seconds=30)
    assert job.next_check_at == checked + timedelta(seconds=30)
    backing_off = PollingJobFactory(
        last_check_at=checked, consecutive_failures=2, next_check_at=checked + timedelta(minutes=8)
    )
    backing_off = job_update(job=backing_off, poll_interval_seconds=30)
    assert backing_off.next_check_at == checked + timedelta(minutes=8)


def test_pause_is_refused_while_the_action_is_in_flight_and_for_finished_jobs():
    sending = PollingJobFactory(trigger_state=TriggerState.SENDING)
    with pytest.raises(JobStateConflict, match="triggering Keboola right now"):
        job_pause(job=sending)
    done = PollingJobFactory(status=JobStatus.COMPLETED)
    with pytest.raises(JobStateConflict, match="only an active job can be paused"):
        job_pause(job=done)
    assert PollingJob.objects.get(pk=sending.pk).status == JobStatus.ACTIVE


def test_resume_makes_the_job_due_now_clears_its_failures_and_queues_a_check(
    queued, django_capture_on_commit_callbacks
):
    job = PollingJobFactory(
        status=JobStatus.PAUSED, consecutive_failures=3, next_check_at=timezone.now() + timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        resumed = job_resume(job=job)
    assert resumed.status == JobStatus.ACTIVE and resumed.consecutive_failures == 0
    assert resumed.next_check_at <= timezone.now()
    assert queued == [([job.pk], {"force": True})]
    with pytest.raises(JobStateConflict):
        job_resume(job=resumed)


def test_check_now_queues_only_active_jobs(queued, django_capture_on_commit_callbacks):
    active, paused = PollingJobFactory(), PollingJobFactory(status=JobStatus.PAUSED)
    with django_capture_on_commit_callbacks(execute=True):
        job_check_now(job=active)
        with pytest.raises(JobStateConflict):
            job_check_now(job=paused)
    assert queued == [([active.pk], {"force": True})]


def test_fail_releases_the_lease_logs_and_notifies_once(settings, django_capture_on_commit_callbacks):
    settings.NOTIFY_EMAILS = ["ops@example.com"]
    job = PollingJobFactory(lease_token="worker", lease_expires_at=timezone.now() + timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert job_fail(job_id=job.pk, reason="The key was revoked.") is True
        assert job_fail(job_id=job.pk, reason="again") is False  # already finished
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.last_error == "The key was revoked."
    assert (job.lease_token, job.lease_expires_at, job.next_check_at) == ("", None, None)
    assert PollingLog.objects.filter(job=job, status="failed", level="error").count() == 1
    assert len(callbacks) == 1  # one email notification queued


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
