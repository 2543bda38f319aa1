"""Confirmations of what webhooks announced (`batches_announce`, `job_confirm`), against the fake
OpenAI and Keboola servers over real HTTP: only the announced batches are read, nothing is
completed without OpenAI's word, and the trigger happens exactly once."""

import threading
from datetime import timedelta

import pytest
from django.utils import timezone

from polling.models import JobBatch, JobStatus, PollingJob
from polling.services import confirm
from polling.services.confirm import batches_announce, job_confirm
from polling.services.polls import job_poll
from polling.tests.factories import make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """Confirmation tasks sent (job id, attempt, countdown), instead of the broker."""
    calls: list[tuple[int, int, float]] = []

    def record(name, *, args=(), kwargs=None, queue="", countdown=0):
        assert (name, queue) == (confirm.CONFIRM_TASK, confirm.settings.WEBHOOK_QUEUE)
        calls.append((args[0], (kwargs or {}).get("attempt", 0), countdown))
        return True

    monkeypatch.setattr(confirm, "task_send", record)
    return calls


def _job_with_done_and_running(fake, prefix: str, *, done: int, running: int):
    """A job watching `done` finished batches and then `running` ones, and their ids."""
    ids = [f"{prefix}{i}" for i in range(done + running)]
    for batch_id in ids[:done]:
        fake.add_batch(batch_id, outcome="completed")
    for batch_id in ids[done:]:
        fake.set_batch(batch_id, status="in_progress")
    return make_job(fake, ids), ids


def test_a_signed_event_for_a_batch_that_is_still_running_completes_nothing(fake, sent):
    fake.set_batch("batch_liar", status="in_progress", completed=3, total=10)
    job = make_job(fake, ["batch_liar"])
    due_at = job.next_check_at

    assert batches_announce(batch_id="batch_liar") == [job.pk]
    result = job_confirm(job_id=job.pk)

    assert result.outcome == "confirmed"
    job.refresh_from_db()
    batch = job.batches.get()
    assert job.status == JobStatus.ACTIVE and batch.status == "in_progress" and batch.announced_at is None
    assert job.lease_token == "" and job.confirm_requested_at is None
    assert job.next_check_at == due_at  # routine polling goes on as it was
    assert fake.keboola_jobs() == [] and fake.openai_requests_per_batch() == {"batch_liar": 1}


def test_events_for_one_job_become_one_confirmation_reading_just_those_batches(fake, sent, settings):
    settings.OPENAI_SWEEP = False  # one GET per batch; with sweeps, the list test below
    job, ids = _job_with_done_and_running(fake, "batch_c", done=4, running=2)

    for batch_id in ids[:4]:
        batches_announce(batch_id=batch_id)
    assert [job_id for job_id, _, _ in sent] == [job.pk]  # one task for four events
    assert sent[0][2] == confirm.settings.WEBHOOK_COALESCE_SECONDS
    assert job_confirm(job_id=job.pk).outcome == "confirmed"

    # Four reads, one per announced batch; a routine check would have read all six.
    assert fake.openai_requests_per_batch() == dict.fromkeys(ids[:4], 1)
    statuses = dict(JobBatch.objects.filter(job=job).values_list("batch_id", "status"))
    assert [statuses[b] for b in ids] == ["completed"] * 4 + ["pending"] * 2  # not read
    # The next event asks again.
    fake.add_batch(ids[4], outcome="failed")
    batches_announce(batch_id=ids[4])
    assert [job_id for job_id, _, _ in sent] == [job.pk, job.pk]


def test_the_last_batch_confirmed_triggers_at_once_and_a_duplicate_task_does_nothing(fake, sent):
    fake.add_batch("batch_first", outcome="completed")
    fake.add_batch("batch_last", outcome="failed")
    job = make_job(fake, ["batch_first", "batch_last"], next_check_at=timezone.now() + timedelta(minutes=5))
    JobBatch.objects.filter(batch_id="batch_first").update(status="completed")

    batches_announce(batch_id="batch_last")
    assert job_confirm(job_id=job.pk).outcome == "triggered"
    assert job_confirm(job_id=job.pk).outcome == "skipped"  # a redelivered task

    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED_WITH_FAILURES
    assert len(fake.keboola_jobs()) == 1
    assert fake.openai_requests_per_batch() == {"batch_last": 1}


def test_a_confirmation_takes_over_a_dispatched_job(fake, sent):
    fake.add_batch("batch_d", outcome="completed")
    job = make_job(fake, ["batch_d"])
    PollingJob.objects.filter(pk=job.pk).update(
        lease_token="d:queued", lease_expires_at=timezone.now() + timedelta(seconds=60)
    )
    batches_announce(batch_id="batch_d")
    assert job_confirm(job_id=job.pk).outcome == "triggered"
    # The dispatched message, when its turn comes, finds the job finished.
    assert job_poll(job_id=job.pk).outcome == "skipped"
    assert len(fake.keboola_jobs()) == 1


def test_a_busy_job_is_confirmed_again_shortly_and_the_routine_check_triggers_once(fake, sent):
    fake.add_batch("batch_r", outcome="completed")
    job = make_job(fake, ["batch_r"])
    # A routine check holds the job.
    PollingJob.objects.filter(pk=job.pk).update(
        lease_token="routine", lease_expires_at=timezone.now() + timedelta(seconds=60)
    )
    batches_announce(batch_id="batch_r")
    assert job_confirm(job_id=job.pk).outcome == "busy"
    assert sent[-1] == (job.pk, 1, confirm.BUSY_RETRY_SECONDS)
    job.refresh_from_db()
    assert job.confirm_requested_at is not None  # later events join the pending retry

    PollingJob.objects.filter(pk=job.pk).update(lease_token="", lease_expires_at=None)
    assert job_poll(job_id=job.pk).outcome == "triggered"
    assert job_confirm(job_id=job.pk, attempt=1).outcome == "skipped"
    assert len(fake.keboola_jobs()) == 1


def test_a_job_busy_for_too_long_is_left_to_its_routine_check(fake, sent):
    fake.set_batch("batch_b", status="in_progress")
    job = make_job(
        fake, ["batch_b"], lease_token="stuck", lease_expires_at=timezone.now() + timedelta(seconds=60)
    )
    batches_announce(batch_id="batch_b")
    assert job_confirm(job_id=job.pk, attempt=confirm.BUSY_RETRIES).outcome == "skipped"
    job.refresh_from_db()
    assert job.confirm_requested_at is None and len(sent) == 1


def test_a_request_whose_task_was_lost_does_not_block_new_ones(fake, sent):
    fake.set_batch("batch_l", status="in_progress")
    job = make_job(fake, ["batch_l"])
    PollingJob.objects.filter(pk=job.pk).update(
        confirm_requested_at=timezone.now() - timedelta(seconds=confirm.REQUEST_STALE_SECONDS + 1)
    )
    batches_announce(batch_id="batch_l")
    assert [job_id for job_id, _, _ in sent] == [job.pk]


def test_a_paused_job_is_never_confirmed_or_triggered(fake, sent):
    fake.add_batch("batch_p", outcome="completed")
    job = make_job(fake, ["batch_p"])
    batches_announce(batch_id="batch_p")
    PollingJob.objects.filter(pk=job.pk).update(status=JobStatus.PAUSED)
    assert job_confirm(job_id=job.pk).outcome == "skipped"
    assert fake.requests() == [] and fake.keboola_jobs() == []


@pytest.mark.django_db(transaction=True)
def test_a_webhook_confirmation_racing_routine_polls_triggers_exactly_once(fake, sent):
    """The last batch is confirmed by a webhook while routine checks of the same job run: which
    ever holds the lease triggers, the others skip or retry; one Keboola job in every round."""
    fake.set_latency(0.02)
    for round_ in range(4):
        batch_ids = [f"batch_race{round_}_{i}" for i in range(3)]
        for batch_id in batch_ids:
            fake.add_batch(batch_id, outcome="completed")
        job = make_job(fake, batch_ids, keboola_configuration_id=f"race-{round_}")
        JobBatch.objects.filter(batch_id__in=batch_ids[:2]).update(status="completed")
        batches_announce(batch_id=batch_ids[2])
        barrier = threading.Barrier(4)
        results = []

        def worker(action, job_id=job.pk):
            from django.db import connection

            barrier.wait()
            try:
                results.append(action(job_id))
            finally:
                connection.close()

        actions = [
            lambda pk: job_confirm(job_id=pk).outcome,
            lambda pk: job_poll(job_id=pk).outcome,
            lambda pk: job_poll(job_id=pk).outcome,
            lambda pk: job_confirm(job_id=pk).outcome,
        ]
        threads = [threading.Thread(target=worker, args=(a,)) for a in actions]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # A confirmation that found the job busy is tried again (here: by hand) and finds it done.
        for job_id, attempt, _ in list(sent):
            if attempt:
                assert job_confirm(job_id=job_id, attempt=attempt).outcome == "skipped"
        sent.clear()
        assert results.count("triggered") == 1, results
        made = [k for k in fake.keboola_jobs() if k["config"] == f"race-{round_}"]
        assert len(made) == 1, (round_, results)
        assert PollingJob.objects.get(pk=job.pk).status == JobStatus.COMPLETED


def test_events_that_joined_one_confirmation_are_read_from_the_list_when_that_takes_fewer_requests(
    fake, sent
):
    job, ids = _job_with_done_and_running(fake, "batch_s", done=6, running=2)
    for batch_id in ids[:6]:
        batches_announce(batch_id=batch_id)

    assert job_confirm(job_id=job.pk).outcome == "confirmed"
    # Six announced batches: the newest read on its own and one list page, not six GETs.
    assert sum(fake.openai_requests_per_batch().values()) == 1
    assert fake.stats()["openai_list_requests"] == 1
    statuses = dict(JobBatch.objects.filter(job=job).values_list("batch_id", "status"))
    assert [statuses[b] for b in ids] == ["completed"] * 6 + ["pending"] * 2


def _announced_jobs(fake, prefix: str, count: int, *, status: str) -> list[PollingJob]:
    """`count` jobs of one batch each and one OpenAI key, the batch in `status` at OpenAI and
    announced."""
    jobs = []
    for n in range(count):
        batch_id = f"{prefix}{n}"
        if status == "in_progress":
            fake.set_batch(batch_id, status="in_progress")
        else:
            fake.add_batch(batch_id, outcome=status)
        key = {"openai_secret": jobs[0].openai_secret} if jobs else {}
        jobs.append(make_job(fake, [batch_id], keboola_configuration_id=f"{prefix}{n}", **key))
        batches_announce(batch_id=batch_id)
    return jobs


def test_a_confirmation_takes_other_pending_requests_with_it_a_few_at_a_time(fake, sent, monkeypatch):
    monkeypatch.setattr(confirm, "CONFIRM_GROUP_MAX", 3)
    jobs = _announced_jobs(fake, "batch_g", 4, status="in_progress")
    assert [job_id for job_id, _, _ in sent] == [job.pk for job in jobs]  # one task each

    assert job_confirm(job_id=jobs[0].pk).outcome == "confirmed"
    # Three jobs (the most one confirmation takes), each batch read once; the fourth waits for
    # its own task. Batches of different jobs are read one by one: they may lie anywhere in the
    # key's list, and a sweep would page through everything between them.
    assert fake.openai_requests_per_batch() == {"batch_g0": 1, "batch_g1": 1, "batch_g2": 1}
    assert fake.stats()["openai_list_requests"] == 0
    pending = dict(PollingJob.objects.values_list("pk", "confirm_requested_at"))
    assert [pending[job.pk] is not None for job in jobs] == [False, False, False, True]
    assert not PollingJob.objects.exclude(lease_token="").exists()

    # The task of a job taken along has nothing of its own to do, but takes what is pending
    # now: the fourth job. Then nothing is left, and no batch was read twice.
    assert job_confirm(job_id=jobs[1].pk).outcome == "skipped"
    assert fake.openai_requests_per_batch() == {f"batch_g{n}": 1 for n in range(4)}
    assert not PollingJob.objects.filter(confirm_requested_at__isnull=False).exists()
    assert [job_confirm(job_id=job.pk).outcome for job in (jobs[2], jobs[3])] == ["skipped", "skipped"]
    assert fake.openai_requests_per_batch() == {f"batch_g{n}": 1 for n in range(4)}


@pytest.mark.django_db(transaction=True)  # the other actions run on threads of their own
def test_finished_jobs_of_one_confirmation_trigger_once_each_side_by_side(fake, sent):
    jobs = _announced_jobs(fake, "batch_h", 3, status="completed")
    sent.clear()
    fake.set_latency(0.6)

    assert job_confirm(job_id=jobs[1].pk).outcome == "triggered"
    assert sorted(k["config"] for k in fake.keboola_jobs()) == ["batch_h0", "batch_h1", "batch_h2"]
    # Side by side: every action's request reached Keboola before the first was answered.
    arrived = sorted(r["time"] for r in fake.requests("keboola.create"))
    assert len(arrived) == 3 and arrived[-1] - arrived[0] < 0.6
    assert set(PollingJob.objects.values_list("status", flat=True)) == {JobStatus.COMPLETED}
    assert not PollingJob.objects.exclude(lease_token="").exists() and sent == []

    # The other jobs' own tasks find them finished.
    assert [job_confirm(job_id=job.pk).outcome for job in (jobs[0], jobs[2])] == ["skipped", "skipped"]
    assert len(fake.keboola_jobs()) == 3
    assert fake.openai_requests_per_batch() == {"batch_h0": 1, "batch_h1": 1, "batch_h2": 1}


def test_a_pending_job_another_worker_holds_is_left_to_its_own_confirmation(fake, sent):
    jobs = _announced_jobs(fake, "batch_k", 2, status="completed")
    PollingJob.objects.filter(pk=jobs[1].pk).update(
        lease_token="routine", lease_expires_at=timezone.now() + timedelta(seconds=60)
    )
    sent.clear()

    assert job_confirm(job_id=jobs[0].pk).outcome == "triggered"
    assert fake.openai_requests_per_batch() == {"batch_k0": 1}
    held = PollingJob.objects.get(pk=jobs[1].pk)
    assert held.lease_token == "routine" and held.confirm_requested_at is not None and sent == []

    assert job_confirm(job_id=jobs[1].pk).outcome == "busy"
    PollingJob.objects.filter(pk=jobs[1].pk).update(lease_token="", lease_expires_at=None)
    assert job_confirm(job_id=jobs[1].pk, attempt=1).outcome == "triggered"
    assert len(fake.keboola_jobs()) == 2


def test_a_routine_check_that_gives_back_a_job_starts_its_waiting_confirmation(fake, sent):
    fake.set_batch("batch_w", status="in_progress")
    job = make_job(fake, ["batch_w"])
    batches_announce(batch_id="batch_w")  # its task is on its way, or found the job busy
    sent.clear()

    assert job_poll(job_id=job.pk, force=True).outcome == "checked"
    assert sent == [(job.pk, 0, 0)]  # at once, not at the busy task's next try
    fake.add_batch("batch_w", outcome="completed")
    assert job_confirm(job_id=job.pk).outcome == "triggered"

    # Nothing waits any more: a check gives the job back without sending anything.
    fake.set_batch("batch_x", status="in_progress")
    other = make_job(fake, ["batch_x"])
    assert job_poll(job_id=other.pk, force=True).outcome == "checked"
    assert sent == [(job.pk, 0, 0)]


def test_a_job_without_a_usable_key_is_left_to_its_routine_check(fake, sent):
    jobs = _announced_jobs(fake, "batch_n", 2, status="in_progress")
    PollingJob.objects.filter(pk=jobs[0].pk).update(openai_secret=None)  # deleted meanwhile

    assert job_confirm(job_id=jobs[0].pk).outcome == "skipped"
    # The other job of the group is confirmed; this one is not read, not failed, not held.
    assert fake.openai_requests_per_batch() == {"batch_n1": 1}
    job = PollingJob.objects.get(pk=jobs[0].pk)
    assert job.status == JobStatus.ACTIVE and job.lease_token == "" and fake.keboola_jobs() == []
