"""Checks of one job (`job_poll`) and of a dispatched chunk of jobs (`jobs_poll`), against the
fake OpenAI and Keboola servers over real HTTP."""

import json
import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from polling.models import JobStatus, PollingJob, PollingLog, TriggerState
from polling.services.polls import job_poll, jobs_poll
from polling.tests.factories import PollingJobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake(fake_openai_settings, settings):
    settings.POLL_FAILURE_LIMIT = 3
    return fake_openai_settings


def make_job(fake, batch_ids, **kwargs):
    fields = {
        "keboola_stack_url": fake.stack_url,
        "keboola_component_id": "kds-team.app-custom-python",
        "keboola_configuration_id": "123456",
        "poll_interval_seconds": 60,
        **kwargs,
    }
    return PollingJobFactory(batch_ids=batch_ids, **fields)


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


def test_running_batches_are_stored_and_logged_only_on_change(fake):
    fake.set_batch("batch_run", status="in_progress", completed=40, failed=2, total=100)
    fake.add_batch("batch_done", outcome="completed")
    job = make_job(fake, ["batch_run", "batch_done"])

    assert job_poll(job_id=job.pk).outcome == "checked"
    job.refresh_from_db()
    run = job.batches.get(batch_id="batch_run")
    assert (run.status, run.request_completed, run.request_failed, run.request_total) == (
        "in_progress",
        40,
        2,
        100,
    )
    assert job.batches.get(batch_id="batch_done").status == "completed"
    assert job.next_check_at >= timezone.now() + timedelta(seconds=55)
    logs_after_first = PollingLog.objects.filter(job=job, status="batch_status").count()
    assert logs_after_first == 2

    job_poll(job_id=job.pk, force=True)
    assert PollingLog.objects.filter(job=job, status="batch_status").count() == logs_after_first
    # The finished batch is not asked about again.
    per_batch = fake.openai_requests_per_batch()
    assert per_batch["batch_done"] == 1 and per_batch["batch_run"] == 2
    assert fake.keboola_jobs() == []


def test_a_check_that_is_not_due_does_nothing(fake):
    fake.set_batch("batch_x", status="in_progress")
    job = make_job(fake, ["batch_x"], next_check_at=timezone.now() + timedelta(seconds=500))
    assert job_poll(job_id=job.pk).outcome == "skipped"
    assert fake.requests() == []


def test_a_job_held_by_another_worker_is_skipped(fake):
    fake.add_batch("batch_x", outcome="completed")
    job = make_job(
        fake, ["batch_x"], lease_token="other", lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    assert job_poll(job_id=job.pk, force=True).outcome == "skipped"
    assert fake.requests() == [] and fake.keboola_jobs() == []


def test_an_expired_lease_is_taken_over(fake):
    fake.add_batch("batch_x", outcome="completed")
    job = make_job(
        fake, ["batch_x"], lease_token="dead", lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert job_poll(job_id=job.pk).outcome == "triggered"


def test_paused_job_is_never_polled_or_triggered(fake):
    fake.add_batch("batch_x", outcome="completed")
    job = make_job(fake, ["batch_x"], status=JobStatus.PAUSED)
    assert job_poll(job_id=job.pk, force=True).outcome == "skipped"
    assert fake.requests() == []


def test_rate_limit_backs_off_honouring_retry_after(fake):
    fake.set_batch("batch_x", status="in_progress")
    job = make_job(fake, ["batch_x"])
    fake.fail("openai.retrieve", "429", times=1, retry_after=900)
    before = timezone.now()

    assert job_poll(job_id=job.pk).outcome == "backoff"

    job.refresh_from_db()
    assert job.status == JobStatus.ACTIVE and job.consecutive_failures == 1
    assert job.next_check_at >= before + timedelta(seconds=899)
    assert "429" in job.last_error or "rate" in job.last_error.lower()
    # Not due during the backoff: no request reaches OpenAI.
    calls = len(fake.requests())
    assert job_poll(job_id=job.pk).outcome == "skipped"
    assert len(fake.requests()) == calls


def test_server_errors_back_off_exponentially_then_recover(fake):
    fake.set_batch("batch_x", status="in_progress")
    job = make_job(fake, ["batch_x"])
    fake.fail("openai.retrieve", "500", times=2)
    delays = []
    for _ in range(2):
        now = timezone.now()
        assert job_poll(job_id=job.pk, force=True).outcome == "backoff"
        job.refresh_from_db()
        delays.append((job.next_check_at - now).total_seconds())
    assert delays[1] > delays[0] * 1.3  # 60s ±20%, then 120s ±20%
    fake.set_batch("batch_x", status="completed")
    assert job_poll(job_id=job.pk, force=True).outcome == "triggered"
    job.refresh_from_db()
    assert job.consecutive_failures == 0


@pytest.mark.parametrize("kind, words", [("401", "API key"), ("404", "does not know batch")])
def test_bad_key_or_unknown_batch_fails_after_the_limit(fake, kind, words):
    fake.set_batch("batch_x", status="in_progress")
    job = make_job(fake, ["batch_x"])
    fake.fail("openai.retrieve", kind, times=10)
    for expected in ("backoff", "backoff", "failed"):
        assert job_poll(job_id=job.pk, force=True).outcome == expected
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and words in job.last_error
    assert fake.keboola_jobs() == []
    assert PollingLog.objects.filter(job=job, status="failed", level="error").exists()


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


def test_unreadable_secret_fails_the_job_clearly(fake, settings):
    fake.set_batch("batch_x", status="in_progress")
    job = make_job(fake, ["batch_x"])
    settings.FERNET_KEYS = ["a-completely-different-key"]
    assert job_poll(job_id=job.pk).outcome == "failed"
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "cannot be decrypted" in job.last_error
    assert fake.requests() == []


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


# --- dispatched checks (the dispatcher's lease) ----------------------------------------------


def _dispatched_token(dispatch, job):
    assert dispatch() == [job.pk]
    return dispatch.messages[0][1]


@pytest.fixture
def dispatched_poll():
    """A dispatched check of one job, as the worker runs the dispatcher's message."""

    def run(*, job_id, dispatch_token):
        return jobs_poll(job_ids=[job_id], dispatch_token=dispatch_token)[job_id]

    return run


def test_a_dispatched_check_polls_once_and_a_duplicate_message_does_nothing(fake, dispatch, dispatched_poll):
    fake.set_batch("batch_d", status="in_progress")
    job = make_job(fake, ["batch_d"])
    token = _dispatched_token(dispatch, job)
    assert dispatched_poll(job_id=job.pk, dispatch_token=token).outcome == "checked"
    job.refresh_from_db()
    assert job.lease_token == "" and job.next_check_at > timezone.now()
    # The same message delivered again (worker lost its ack): the job is not due, no request.
    assert dispatched_poll(job_id=job.pk, dispatch_token=token).outcome == "skipped"
    assert fake.openai_requests_per_batch() == {"batch_d": 1}


def test_only_the_dispatch_token_unlocks_a_dispatched_job(fake, dispatch, dispatched_poll):
    fake.set_batch("batch_t", status="in_progress")
    job = make_job(fake, ["batch_t"])
    _dispatched_token(dispatch, job)
    assert job_poll(job_id=job.pk).outcome == "skipped"  # a message without the token
    assert dispatched_poll(job_id=job.pk, dispatch_token="d:stale").outcome == "skipped"
    assert fake.openai_requests_per_batch() == {}


def test_a_forced_check_takes_over_a_dispatch_lease_and_the_message_then_does_nothing(
    fake, dispatch, dispatched_poll
):
    fake.set_batch("batch_f", status="in_progress")
    job = make_job(fake, ["batch_f"])
    token = _dispatched_token(dispatch, job)
    assert job_poll(job_id=job.pk, force=True).outcome == "checked"  # "check now", resume
    assert dispatched_poll(job_id=job.pk, dispatch_token=token).outcome == "skipped"
    assert fake.openai_requests_per_batch() == {"batch_f": 1}


def test_pause_wins_over_a_dispatched_message_and_resume_checks_at_once(fake, dispatch, dispatched_poll):
    from polling.services import job_pause, job_resume

    fake.add_batch("batch_p", outcome="completed")
    job = make_job(fake, ["batch_p"])
    token = _dispatched_token(dispatch, job)
    job_pause(job=job)
    assert dispatched_poll(job_id=job.pk, dispatch_token=token).outcome == "skipped"
    assert fake.keboola_jobs() == []
    job_resume(job=PollingJob.objects.get(pk=job.pk))
    # The dispatch lease is still there; the forced check of resume is not blocked by it.
    assert job_poll(job_id=job.pk, force=True).outcome == "triggered"
    assert len(fake.keboola_jobs()) == 1


def test_a_job_in_backoff_is_not_dispatched_before_its_delay(fake, dispatch, dispatched_poll):
    fake.fail("openai.retrieve", "500")
    fake.set_batch("batch_b", status="in_progress")
    job = make_job(fake, ["batch_b"])
    token = _dispatched_token(dispatch, job)
    assert dispatched_poll(job_id=job.pk, dispatch_token=token).outcome == "backoff"
    job.refresh_from_db()
    assert job.next_check_at > timezone.now() + timedelta(seconds=30)  # 60 s ± 20%
    assert dispatch() == []


# --- a dispatched chunk of several jobs -------------------------------------------------------


def test_a_chunk_checks_each_job_by_its_own_state(fake, dispatch):
    fake.set_batch("batch_run", status="in_progress")
    fake.add_batch("batch_done", outcome="completed")
    fake.add_batch("batch_bad", outcome="failed")
    running = make_job(fake, ["batch_run"])
    finished = make_job(fake, ["batch_done", "batch_bad"], keboola_configuration_id="cfg-finished")
    paused = make_job(fake, ["batch_run"])
    held = make_job(fake, ["batch_run"])
    dispatch()
    token = dispatch.messages[0][1]
    was_due = PollingJob.objects.get(pk=running.pk).next_check_at
    PollingJob.objects.filter(pk=paused.pk).update(status=JobStatus.PAUSED)
    PollingJob.objects.filter(pk=held.pk).update(
        lease_token="other", lease_expires_at=timezone.now() + timedelta(minutes=5)
    )

    results = jobs_poll(job_ids=[running.pk, finished.pk, paused.pk, held.pk], dispatch_token=token)

    assert {pk: r.outcome for pk, r in results.items()} == {
        running.pk: "checked",
        finished.pk: "triggered",
        paused.pk: "skipped",
        held.pk: "skipped",
    }
    assert len(fake.keboola_jobs()) == 1 and fake.keboola_jobs()[0]["config"] == "cfg-finished"
    running.refresh_from_db()
    assert running.lease_token == "" and running.last_check_at is not None
    # Due again one interval after it was due (not after it ran): delays do not add up.
    assert running.next_check_at == was_due + timedelta(seconds=60)
    assert running.batches.get().status == "in_progress"
    held.refresh_from_db()
    assert held.lease_token == "other"  # untouched
    # The paused and held jobs were never read from OpenAI; the running one once.
    assert fake.openai_requests_per_batch() == {"batch_run": 1, "batch_done": 1, "batch_bad": 1}
    # The same message again: nothing is due any more.
    again = jobs_poll(job_ids=[running.pk, finished.pk], dispatch_token=token)
    assert {r.outcome for r in again.values()} == {"skipped"}
    assert fake.openai_requests_per_batch()["batch_run"] == 1


def test_one_jobs_openai_errors_do_not_hold_back_the_others(fake, dispatch):
    from secrets_vault.tests.factories import OpenAISecretFactory

    fake.set_batch("batch_ok", status="in_progress")
    good = make_job(fake, ["batch_ok"])
    # The same batch id read with another key, which OpenAI rejects: reads are keyed by both.
    bad = make_job(fake, ["batch_ok"], openai_secret=OpenAISecretFactory(value="sk-other-key"))
    fake.reject_openai_key("sk-other-key")
    dispatch()
    token = dispatch.messages[0][1]

    results = jobs_poll(job_ids=[good.pk, bad.pk], dispatch_token=token)

    assert results[good.pk].outcome == "checked"
    assert results[bad.pk].outcome == "backoff"
    bad.refresh_from_db()
    assert bad.consecutive_failures == 1 and "HTTP 401" in bad.last_error
    assert bad.lease_token == "" and bad.next_check_at > timezone.now() + timedelta(seconds=30)
    good.refresh_from_db()
    assert good.consecutive_failures == 0 and good.last_error == ""


def test_a_chunk_makes_the_same_number_of_queries_for_one_job_or_ten(fake, dispatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for(count: int) -> int:
        PollingJob.objects.all().delete()
        jobs = []
        for i in range(count):
            fake.set_batch(f"batch_q{count}_{i}", status="in_progress")
            jobs.append(make_job(fake, [f"batch_q{count}_{i}"]))
        dispatch()
        token = dispatch.messages[0][1]
        with CaptureQueriesContext(connection) as captured:
            results = jobs_poll(job_ids=[j.pk for j in jobs], dispatch_token=token)
        assert {r.outcome for r in results.values()} == {"checked"}
        return len(captured)

    assert queries_for(1) == queries_for(10)


def test_an_unexpected_error_releases_every_job_of_the_chunk_with_backoff(fake, dispatch, monkeypatch):
    from polling.integrations import openai as openai_api

    fake.set_batch("batch_u1", status="in_progress")
    fake.set_batch("batch_u2", status="in_progress")
    jobs = [make_job(fake, ["batch_u1"]), make_job(fake, ["batch_u2"])]
    dispatch()
    token = dispatch.messages[0][1]

    def broken(reads):
        raise RuntimeError("a bug")

    monkeypatch.setattr(openai_api, "retrieve_many", broken)
    results = jobs_poll(job_ids=[j.pk for j in jobs], dispatch_token=token)

    assert {r.outcome for r in results.values()} == {"error"}
    for job in jobs:
        job.refresh_from_db()
        assert job.lease_token == "" and job.consecutive_failures == 1
        assert job.next_check_at > timezone.now() + timedelta(seconds=30)
        assert PollingLog.objects.filter(job=job, status="error").count() == 1


def test_the_next_check_keeps_the_cadence_unless_early_or_far_behind():
    # Two checks of a job are never closer than half an interval (tests/reliability checks it live).
    from polling.services.polls import next_due

    now = timezone.now()
    job = PollingJob(poll_interval_seconds=30)
    job.next_check_at = now - timedelta(seconds=2)  # dispatched 2 s late
    assert next_due(job, now=now) == now + timedelta(seconds=28)
    job.next_check_at = now + timedelta(seconds=10)  # "check now" before it was due
    assert next_due(job, now=now) == now + timedelta(seconds=30)
    job.next_check_at = now - timedelta(seconds=20)  # far behind (a restart): never 10 s apart
    assert next_due(job, now=now) == now + timedelta(seconds=30)
    job.next_check_at = now - timedelta(seconds=45)  # more than an interval behind
    assert next_due(job, now=now) == now + timedelta(seconds=30)
    job.next_check_at = None
    assert next_due(job, now=now) == now + timedelta(seconds=30)
