"""Running a job's action exactly once (polling/services/trigger.py), reached as the workers reach
it: through a check of a job whose batches are all terminal, against the fake OpenAI and Keboola
servers (and a local webhook receiver) over real HTTP."""

import json
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from polling.models import JobStatus, PollingJob, TriggerState
from polling.services import job_create
from polling.services.polls import job_poll
from polling.tests.factories import make_job
from secrets_vault.services import secret_create

pytestmark = pytest.mark.django_db


def test_all_terminal_triggers_keboola_once_with_the_exact_payload(fake):
    fake.add_batch("batch_a", outcome="completed")
    fake.add_batch("batch_b", outcome="completed")
    fake.add_batch("batch_c", outcome="failed")
    job = make_job(fake, ["batch_a", "batch_b", "batch_c"])

    result = job_poll(job_id=job.pk)

    assert result.outcome == "triggered"
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED_WITH_FAILURES
    assert job.trigger_state == TriggerState.DONE and job.completed_at is not None
    created = fake.keboola_jobs()
    assert len(created) == 1 and job.keboola_job_id == created[0]["id"]
    assert job.keboola_job_url == created[0]["url"]
    body = fake.requests("keboola.create")[0]["body"]
    assert body == {
        "mode": "run",
        "component": "kds-team.app-custom-python",
        "config": "123456",
        "variableValuesData": {
            "values": [
                {"name": "batch_ids_completed", "value": '["batch_a", "batch_b"]'},
                {"name": "batch_ids_failed", "value": '["batch_c"]'},
                {"name": "batch_count_total", "value": "3"},
                {"name": "batch_count_completed", "value": "2"},
                {"name": "batch_count_failed", "value": "1"},
            ]
        },
    }
    # Further polls (beat still firing, a duplicate message) do nothing.
    assert job_poll(job_id=job.pk, force=True).outcome == "skipped"
    assert len(fake.keboola_jobs()) == 1


def test_all_completed_is_completed(fake):
    fake.add_batch("batch_ok", outcome="completed")
    job = make_job(fake, ["batch_ok"])
    job_poll(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED and not job.last_error


def test_an_action_reads_the_job_and_its_batches_once(fake, django_assert_max_num_queries):
    # At 10,000 jobs the actions' database round trips were most of the worker's time: the
    # job, its secret and its batches are read once, the batches' outcome and the notification
    # settings are taken from those reads, not asked again.
    from polling.services.leases import lease_claim
    from polling.services.trigger import action_run

    fake.set_batch("batch_q1", status="completed")
    fake.set_batch("batch_q2", status="failed")
    job = make_job(fake, ["batch_q1", "batch_q2"], notify_emails="ops@example.com")
    job_poll(job_id=job.pk, force=True)  # records both ends, then triggers
    PollingJob.objects.filter(pk=job.pk).update(
        status=JobStatus.ACTIVE, trigger_state=TriggerState.NONE, trigger_attempts=0
    )
    token, _ = lease_claim(PollingJob.objects.filter(pk=job.pk), seconds=60, now=timezone.now())
    # job + secret + batches, the claim, its log line, then in one transaction the outcome and
    # its log line, with the savepoint and its release of a test's transaction.
    with django_assert_max_num_queries(9):
        assert action_run(job_id=job.pk, lease_token=token).state == "triggered"
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED_WITH_FAILURES and len(fake.keboola_jobs()) == 2


def test_keboola_rate_limit_retries_and_creates_exactly_one_job(fake):
    fake.add_batch("batch_x", outcome="completed")
    job = make_job(fake, ["batch_x"])
    fake.fail("keboola.create", "429", times=1, retry_after=5)

    assert job_poll(job_id=job.pk).outcome == "retry"
    job.refresh_from_db()
    assert job.status == JobStatus.ACTIVE and job.trigger_state == TriggerState.RETRY
    assert fake.keboola_jobs() == []

    assert job_poll(job_id=job.pk, force=True).outcome == "triggered"
    assert len(fake.keboola_jobs()) == 1
    # The retry did not ask OpenAI again: the batches were already final.
    assert fake.openai_requests_per_batch()["batch_x"] == 1


def test_keboola_timeout_after_create_is_reconciled_not_repeated(fake, settings):
    settings.KEBOOLA_TIMEOUT_SECONDS = 0.5
    fake.add_batch("batch_x", outcome="completed")
    job = make_job(fake, ["batch_x"])
    fake.fail("keboola.create", "timeout_after_create", times=1, delay=3)

    assert job_poll(job_id=job.pk).outcome == "unknown"
    job.refresh_from_db()
    assert job.trigger_state == TriggerState.SENDING and job.status == JobStatus.ACTIVE
    assert len(fake.keboola_jobs()) == 1  # Keboola did create it

    # Within the grace period nothing is sent or searched.
    assert job_poll(job_id=job.pk, force=True).outcome == "unknown"
    assert len(fake.requests("keboola.search")) == 0

    PollingJob.objects.filter(pk=job.pk).update(trigger_started_at=timezone.now() - timedelta(minutes=5))
    assert job_poll(job_id=job.pk, force=True).outcome == "triggered"
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED
    assert len(fake.keboola_jobs()) == 1 and job.keboola_job_id == fake.keboola_jobs()[0]["id"]
    assert len(fake.requests("keboola.create")) == 1


def test_keboola_500_that_created_nothing_is_sent_again_after_lookup(fake):
    fake.add_batch("batch_x", outcome="completed")
    job = make_job(fake, ["batch_x"])
    fake.fail("keboola.create", "500", times=1)
    assert job_poll(job_id=job.pk).outcome == "unknown"
    PollingJob.objects.filter(pk=job.pk).update(trigger_started_at=timezone.now() - timedelta(minutes=5))

    assert job_poll(job_id=job.pk, force=True).outcome == "triggered"
    assert len(fake.requests("keboola.search")) == 1
    assert len(fake.keboola_jobs()) == 1


def test_worker_killed_mid_trigger_is_resolved_by_the_next_poll(fake):
    """The Keboola job exists, but the worker died before recording it."""
    fake.add_batch("batch_x", outcome="completed")
    job = make_job(fake, ["batch_x"])
    from polling.actions import get_action
    from polling.services.trigger import trigger_metadata

    job.batches.update(status="completed")
    # The worker's request, sent as the worker sends it; then the worker dies.
    get_action(job.action_type).send(job, trigger_metadata(job), secret=job.keboola_secret.value)
    assert len(fake.keboola_jobs()) == 1
    PollingJob.objects.filter(pk=job.pk).update(
        trigger_state=TriggerState.SENDING,
        trigger_attempts=1,
        trigger_started_at=timezone.now() - timedelta(minutes=5),
        lease_token="dead-worker",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert job_poll(job_id=job.pk).outcome == "triggered"
    assert len(fake.keboola_jobs()) == 1
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED


def test_keboola_rejection_fails_the_job_with_the_reason(fake):
    fake.add_batch("batch_x", outcome="completed")
    job = make_job(fake, ["batch_x"])
    fake.reject_keboola_token(job.keboola_secret.value)
    assert job_poll(job_id=job.pk).outcome == "failed"
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and job.trigger_state == TriggerState.FAILED
    assert "401" in job.last_error


def test_keboola_down_exhausts_the_retry_budget_then_fails(fake, settings):
    settings.TRIGGER_MAX_ATTEMPTS = 3
    fake.add_batch("batch_x", outcome="completed")
    job = make_job(fake, ["batch_x"])
    fake.fail("keboola.create", "429", times=10)
    outcomes = [job_poll(job_id=job.pk, force=True).outcome for _ in range(3)]
    assert outcomes == ["retry", "retry", "failed"]
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "3 attempts" in job.last_error
    assert fake.keboola_jobs() == []


@pytest.mark.django_db(transaction=True)
def test_concurrent_polls_of_one_job_trigger_once(fake):
    fake.add_batch("batch_a", outcome="completed")
    fake.add_batch("batch_b", outcome="expired")
    job = make_job(fake, ["batch_a", "batch_b"])
    fake.set_latency(0.05)
    barrier = threading.Barrier(6)
    results = []

    def worker():
        from django.db import connection

        barrier.wait()
        try:
            results.append(job_poll(job_id=job.pk, force=True).outcome)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("triggered") == 1
    assert len(fake.keboola_jobs()) == 1
    values = json.loads(fake.keboola_jobs()[0]["variables"]["batch_ids_failed"])
    assert values == ["batch_b"]


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
