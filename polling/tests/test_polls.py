"""Checks of one job (`job_poll`) and of a dispatched chunk of jobs (`jobs_poll`), against the
fake OpenAI and Keboola servers over real HTTP."""

from datetime import timedelta

import pytest
from django.utils import timezone

from polling.models import JobStatus, PollingJob, PollingLog
from polling.services.polls import job_poll, jobs_poll
from polling.tests.factories import make_job

pytestmark = pytest.mark.django_db


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


def test_a_forced_check_is_answered_by_a_read_made_since_it_was_asked(fake):
    # A new job is due at once and also gets a forced check: whichever runs second must not read
    # the batches again a moment after the first did.
    fake.add_batch("batch_a", finish_after=3600)
    job = make_job(fake, ["batch_a"])
    asked = timezone.now().timestamp()
    assert job_poll(job_id=job.pk).outcome == "checked"  # the routine check, after the ask
    assert job_poll(job_id=job.pk, force=True, asked_at=asked).outcome == "skipped"
    assert fake.openai_requests_per_batch() == {"batch_a": 1}
    # Asked after that read: the forced check reads.
    asked = timezone.now().timestamp()
    assert job_poll(job_id=job.pk, force=True, asked_at=asked).outcome == "checked"
    assert fake.openai_requests_per_batch() == {"batch_a": 2}


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


def test_unreadable_secret_fails_the_job_clearly(fake, settings):
    fake.set_batch("batch_x", status="in_progress")
    job = make_job(fake, ["batch_x"])
    settings.FERNET_KEYS = ["a-completely-different-key"]
    assert job_poll(job_id=job.pk).outcome == "failed"
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "cannot be decrypted" in job.last_error
    assert fake.requests() == []


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


# --- the steps of a check: read, apply, release ----------------------------------------------


def _read(fake, job):
    from polling.services.polls import batches_read

    batches_of = {job.pk: list(job.batches.order_by("pk"))}
    return batches_read(jobs=[job], keys={job.pk: job.openai_secret.value}, batches_of=batches_of)


def test_reading_pairs_each_unfinished_batch_with_its_answer_and_changes_nothing(fake):
    from polling.integrations.openai import BatchInfo

    fake.set_batch("batch_r1", status="in_progress", completed=5, failed=0, total=10)
    fake.add_batch("batch_r2", outcome="completed")
    job = make_job(fake, ["batch_r1", "batch_r2", "batch_unknown"])
    job.batches.filter(batch_id="batch_r2").update(status="completed")  # already final: not asked

    answers = _read(fake, job)

    ((r1, info), (unknown, error)) = answers[job.pk]
    assert (r1.batch_id, unknown.batch_id) == ("batch_r1", "batch_unknown")
    assert isinstance(info, BatchInfo) and info.status == "in_progress" and info.request_completed == 5
    assert not isinstance(error, BatchInfo)  # OpenAI does not know it: an error, not an exception
    assert set(fake.openai_requests_per_batch()) == {"batch_r1", "batch_unknown"}
    assert set(job.batches.values_list("status", flat=True)) == {"pending", "completed"}
    assert not PollingLog.objects.exists()


def test_applying_stores_what_changed_logs_status_moves_and_returns_the_errors(fake):
    from polling.services.polls import batches_apply

    fake.set_batch("batch_a1", status="in_progress", completed=5, failed=1, total=10)
    job = make_job(fake, ["batch_a1", "batch_unknown"])
    answers = _read(fake, job)

    errors_of = batches_apply(answers=answers)

    unknown_read = answers[job.pk][1]
    assert unknown_read[0].batch_id == "batch_unknown"
    assert errors_of == {job.pk: [unknown_read]}  # the failed read, handed on as it came
    stored = job.batches.get(batch_id="batch_a1")
    assert (stored.status, stored.request_completed, stored.request_failed, stored.request_total) == (
        "in_progress",
        5,
        1,
        10,
    )
    assert job.batches.get(batch_id="batch_unknown").status == "pending"
    (log,) = PollingLog.objects.filter(job=job, status="batch_status")
    assert "batch_a1: pending → in_progress (5/10 requests done, 1 failed)" in log.message
    # The same answers again change nothing and log nothing.
    assert set(batches_apply(answers=_read(fake, job))) == {job.pk}
    assert PollingLog.objects.filter(job=job, status="batch_status").count() == 1


def test_releasing_checked_jobs_schedules_them_and_ends_their_failure_streak(fake):
    from polling.services.leases import lease_claim
    from polling.services.polls import checked_release

    now = timezone.now()
    job = make_job(fake, ["batch_x"], consecutive_failures=2, last_error="OpenAI had a hiccup")
    other = make_job(fake, ["batch_y"])
    token, _ = lease_claim(PollingJob.objects.all(), seconds=60, now=now)
    PollingJob.objects.filter(pk=other.pk).update(lease_token="taken-over")

    checked_release(
        checked={job.pk: now + timedelta(seconds=60), other.pk: now + timedelta(seconds=60)},
        token=token,
        now=now,
    )

    job.refresh_from_db()
    assert (job.lease_token, job.lease_expires_at) == ("", None)
    assert (job.last_check_at, job.next_check_at) == (now, now + timedelta(seconds=60))
    assert (job.consecutive_failures, job.last_error) == (0, "")
    other.refresh_from_db()
    assert other.lease_token == "taken-over" and other.last_check_at is None
