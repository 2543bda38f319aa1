"""Reading a key's batches by sweeping its list (sweeps.py), against the fake OpenAI server:
the same results as single reads in far fewer requests, and the same rules on failure."""

from datetime import timedelta

import pytest
from django.utils import timezone

from polling.models import JobBatch, PollingJob, TriggerState
from polling.services.polls import jobs_poll
from polling.services.schedules import jobs_dispatch_due
from polling.tests.factories import make_job

pytestmark = pytest.mark.django_db


def _jobs_with_batches(fake, *, jobs, per_job, prefix="b", **kwargs):
    """`jobs` jobs of one key, each watching `per_job` running batches, added to the fake in the
    order the jobs store them (as users add batches after creating them)."""
    made = []
    for j in range(jobs):
        ids = [f"{prefix}_{j}_{k}" for k in range(per_job)]
        for batch_id in ids:
            fake.set_batch(batch_id, status="in_progress", completed=k_done(batch_id), total=100)
        made.append(make_job(fake, ids, **kwargs))
        kwargs.setdefault("openai_secret", made[0].openai_secret)
    return made


def k_done(batch_id):
    return int(batch_id.rsplit("_", 1)[1])


def _dispatch_once(monkeypatch):
    from polling import tasks

    sent = []
    monkeypatch.setattr(tasks.poll_jobs, "apply_async", lambda args, **_: sent.append(args))
    jobs_dispatch_due()
    return sent


def _place_all(monkeypatch, settings):
    """Check every due job once, so that where each batch stands in the list is known. On a
    loaded machine the suite's 3 s OpenAI timeout can leave a read unanswered, and that batch
    unplaced; these tests are about where walks start, not about timeouts."""
    settings.OPENAI_TIMEOUT_SECONDS = 60
    for ids, token in _dispatch_once(monkeypatch):
        jobs_poll(job_ids=ids, dispatch_token=token)
    assert not JobBatch.objects.filter(openai_created_at__isnull=True).exists()


def test_a_keys_jobs_are_read_by_list_pages_and_stored_like_single_reads(fake, monkeypatch):
    jobs = _jobs_with_batches(fake, jobs=30, per_job=10)
    fake.add_batch("unrelated_newest")  # someone else's batch, newer than all of ours
    messages = _dispatch_once(monkeypatch)
    assert len(messages) == 1 and sorted(messages[0][0]) == sorted(j.pk for j in jobs)

    results = jobs_poll(job_ids=messages[0][0], dispatch_token=messages[0][1])
    assert {r.outcome for r in results.values()} == {"checked"}
    # 300 batches: the newest of ours on its own, then three pages, not 300 reads.
    assert len(fake.requests("openai.retrieve")) == 1
    assert len(fake.requests("openai.list")) == 3
    stored = JobBatch.objects.filter(job__in=jobs)
    assert {b.status for b in stored} == {"in_progress"}
    assert all(b.request_completed == k_done(b.batch_id) for b in stored)
    assert all(b.openai_created_at is not None for b in stored)


def test_a_batch_the_list_does_not_show_is_read_on_its_own(fake, monkeypatch):
    jobs = _jobs_with_batches(fake, jobs=3, per_job=4)
    # A batch of another project: the list never shows it; its own read answers 404.
    job = make_job(fake, ["batch_elsewhere", "batch_mine"], openai_secret=jobs[0].openai_secret)
    fake.set_batch("batch_mine", status="in_progress")
    for message in _dispatch_once(monkeypatch):
        jobs_poll(job_ids=message[0], dispatch_token=message[1])
    singles = {r["target"] for r in fake.requests("openai.retrieve")}
    assert "batch_elsewhere" in singles and len(singles) <= 2
    job.refresh_from_db()
    assert "batch_elsewhere" in job.last_error and job.consecutive_failures == 1


def test_a_rate_limited_list_page_backs_off_every_job_it_would_have_served(fake, monkeypatch):
    jobs = _jobs_with_batches(fake, jobs=5, per_job=3)
    fake.fail("openai.list", "429", times=10, retry_after=900)
    (message,) = _dispatch_once(monkeypatch)
    results = jobs_poll(job_ids=message[0], dispatch_token=message[1])
    assert {r.outcome for r in results.values()} == {"backoff"}
    for job in PollingJob.objects.filter(pk__in=[j.pk for j in jobs]):
        assert job.consecutive_failures == 1 and "429" in job.last_error
        assert job.next_check_at >= timezone.now() + timedelta(seconds=890)  # Retry-After wins
    # The 429 stood for every batch it would have shown: none was read one by one instead.
    assert len(fake.requests("openai.retrieve")) == 1  # the newest batch, read on its own


def test_a_rejected_key_on_a_list_page_counts_like_a_rejected_single_read(fake, monkeypatch, settings):
    settings.POLL_FAILURE_LIMIT = 1
    jobs = _jobs_with_batches(fake, jobs=4, per_job=3)
    fake.fail("openai.list", "401", times=10)
    (message,) = _dispatch_once(monkeypatch)
    results = jobs_poll(job_ids=message[0], dispatch_token=message[1])
    assert {r.outcome for r in results.values()} == {"failed"}
    assert {j.status for j in PollingJob.objects.filter(pk__in=[j.pk for j in jobs])} == {"failed"}
    assert fake.keboola_jobs() == []


def test_with_sweeps_off_every_batch_is_read_on_its_own(fake, monkeypatch, settings):
    settings.OPENAI_SWEEP = False
    jobs = _jobs_with_batches(fake, jobs=3, per_job=5)
    for message in _dispatch_once(monkeypatch):
        jobs_poll(job_ids=message[0], dispatch_token=message[1])
    assert fake.requests("openai.list") == []
    assert len(fake.requests("openai.retrieve")) == 15
    assert all(j.pk for j in jobs)


def test_a_keys_jobs_due_soon_are_checked_with_its_due_ones_and_keep_their_cadence(
    fake, monkeypatch, settings
):
    settings.OPENAI_SWEEP_AHEAD_SECONDS = 5
    due, soon, later = _jobs_with_batches(fake, jobs=3, per_job=2)
    now = timezone.now()
    PollingJob.objects.filter(pk=soon.pk).update(next_check_at=now + timedelta(seconds=4))
    PollingJob.objects.filter(pk=later.pk).update(next_check_at=now + timedelta(seconds=20))
    (message,) = _dispatch_once(monkeypatch)
    assert sorted(message[0]) == sorted([due.pk, soon.pk])
    jobs_poll(job_ids=message[0], dispatch_token=message[1])
    soon_due = now + timedelta(seconds=4)
    soon.refresh_from_db()
    # Checked up to 5 s early, it is due again one interval after its own due time.
    assert abs((soon.next_check_at - (soon_due + timedelta(seconds=60))).total_seconds()) < 0.01
    assert not {r["target"] for r in fake.requests("openai.retrieve")} & {"b_2_0", "b_2_1"}


@pytest.mark.parametrize(
    "waiting",
    [{"consecutive_failures": 1}, {"trigger_state": TriggerState.RETRY}],
    ids=["poll-backoff", "trigger-retry"],
)
def test_a_job_in_backoff_is_never_taken_early_with_its_keys_due_jobs(fake, monkeypatch, settings, waiting):
    # Its due time may be a server's Retry-After: checking it early would break that.
    settings.OPENAI_SWEEP_AHEAD_SECONDS = 5
    due, backing_off = _jobs_with_batches(fake, jobs=2, per_job=2)
    now = timezone.now()
    PollingJob.objects.filter(pk=backing_off.pk).update(next_check_at=now + timedelta(seconds=3), **waiting)
    (message,) = _dispatch_once(monkeypatch)
    assert message[0] == [due.pk]


def test_a_job_is_never_taken_more_than_half_its_interval_early(fake, monkeypatch, settings):
    # With a short interval the sweep window would otherwise check a job twice in a moment.
    settings.OPENAI_SWEEP_AHEAD_SECONDS = 5
    due, half, early = _jobs_with_batches(fake, jobs=3, per_job=2, poll_interval_seconds=4)
    now = timezone.now()  # after making the jobs, which can take a second on a loaded machine
    PollingJob.objects.filter(pk=half.pk).update(next_check_at=now + timedelta(seconds=1.5))
    PollingJob.objects.filter(pk=early.pk).update(next_check_at=now + timedelta(seconds=3.5))
    (message,) = _dispatch_once(monkeypatch)
    assert sorted(message[0]) == sorted([due.pk, half.pk])


def test_a_job_read_less_than_half_its_interval_ago_is_not_taken_early(fake, monkeypatch, settings):
    # A check that read late keeps the cadence, so its next due time can come soon after that
    # read; taking that check early as well would read the batches again at once.
    settings.OPENAI_SWEEP_AHEAD_SECONDS = 5
    due, recent, rested = _jobs_with_batches(fake, jobs=3, per_job=2, poll_interval_seconds=4)
    now = timezone.now()  # after making the jobs, which can take a second on a loaded machine
    PollingJob.objects.filter(pk__in=[recent.pk, rested.pk]).update(next_check_at=now + timedelta(seconds=1))
    PollingJob.objects.filter(pk=recent.pk).update(last_check_at=now - timedelta(seconds=0.5))
    PollingJob.objects.filter(pk=rested.pk).update(last_check_at=now - timedelta(seconds=2.5))
    (message,) = _dispatch_once(monkeypatch)
    assert sorted(message[0]) == sorted([due.pk, rested.pk])


def test_the_next_check_counts_from_when_the_batches_were_read(fake, monkeypatch, settings):
    # A group whose reads wait (here: each answer takes 1 s) is next due one interval after
    # the reads, not after the check began, which would bring the next read close to this one.
    settings.OPENAI_SWEEP = False
    job, *_ = _jobs_with_batches(fake, jobs=1, per_job=1, poll_interval_seconds=2)
    PollingJob.objects.filter(pk=job.pk).update(next_check_at=timezone.now() - timedelta(seconds=5))
    (message,) = _dispatch_once(monkeypatch)
    fake.set_latency(1.0)
    jobs_poll(job_ids=message[0], dispatch_token=message[1])
    (read,) = [r["time"] for r in fake.requests("openai.retrieve")]
    job.refresh_from_db()
    assert job.next_check_at.timestamp() - read >= 2 - 0.05
    assert job.last_check_at.timestamp() >= read


def test_a_repeated_message_does_not_check_its_jobs_again_early(fake, monkeypatch, settings):
    # A message that arrives again (or late, after a newer one checked its jobs) no longer holds
    # them: they are checked only when really due, not within the sweep window.
    settings.OPENAI_SWEEP_AHEAD_SECONDS = 5
    _jobs_with_batches(fake, jobs=3, per_job=2, poll_interval_seconds=4)
    (message,) = _dispatch_once(monkeypatch)
    first = jobs_poll(job_ids=message[0], dispatch_token=message[1])
    assert {r.outcome for r in first.values()} == {"checked"}
    observed = fake.openai_observations_per_batch()
    again = jobs_poll(job_ids=message[0], dispatch_token=message[1])
    assert {r.outcome for r in again.values()} == {"skipped"}
    assert fake.openai_observations_per_batch() == observed


def test_a_large_group_hands_its_finished_jobs_on_in_small_chunks(fake, monkeypatch):
    from polling import tasks

    jobs = _jobs_with_batches(fake, jobs=12, per_job=2)
    for batch in JobBatch.objects.filter(job=jobs[0]):
        fake.set_batch(batch.batch_id, status="completed")
    sent = []
    monkeypatch.setattr(tasks.poll_jobs, "apply_async", lambda args, **_: sent.append(args))
    jobs_dispatch_due()
    (group,) = sent
    results = jobs_poll(job_ids=group[0], dispatch_token=group[1])
    assert results[jobs[0].pk].outcome == "handed_over" and fake.keboola_jobs() == []
    # Its own message, under a new dispatch lease the dispatcher leaves alone meanwhile.
    (_, (ids, token)) = sent
    assert ids == [jobs[0].pk] and token != group[1]
    assert jobs_dispatch_due() == 0
    reads = len(fake.requests("openai.retrieve")) + len(fake.requests("openai.list"))
    assert jobs_poll(job_ids=ids, dispatch_token=token)[jobs[0].pk].outcome == "triggered"
    assert len(fake.keboola_jobs()) == 1
    # The action ran without reading OpenAI again.
    assert len(fake.requests("openai.retrieve")) + len(fake.requests("openai.list")) == reads


def _check_again(monkeypatch, jobs):
    """Make `jobs` due now and run the dispatcher's messages for them."""
    PollingJob.objects.filter(pk__in=[j.pk for j in jobs]).update(
        next_check_at=timezone.now() - timedelta(seconds=1)
    )
    messages = _dispatch_once(monkeypatch)
    assert sorted(pk for ids, _ in messages for pk in ids) == sorted(j.pk for j in jobs)
    for ids, token in messages:
        jobs_poll(job_ids=ids, dispatch_token=token)


def test_a_sweep_starts_after_a_known_batch_above_its_own_instead_of_reading_one(fake, monkeypatch, settings):
    jobs = _jobs_with_batches(fake, jobs=30, per_job=10)
    _place_all(monkeypatch, settings)
    reads, pages = len(fake.requests("openai.retrieve")), len(fake.requests("openai.list"))
    for batch_id in (f"b_{j}_{k}" for j in range(10, 20) for k in range(10)):
        fake.set_batch(batch_id, status="finalizing", completed=100, total=100)

    # The middle ten jobs are due again: the batch just above theirs (b_20_0, of a job that is
    # not due) was read before, so one page after it shows all 100 of theirs.
    _check_again(monkeypatch, jobs[10:20])
    assert len(fake.requests("openai.retrieve")) == reads
    assert len(fake.requests("openai.list")) == pages + 1
    assert fake.requests("openai.list")[-1]["query"]["after"] == ["b_20_0"]
    assert set(JobBatch.objects.filter(job__in=jobs[10:20]).values_list("status", flat=True)) == {
        "finalizing"
    }
    assert set(JobBatch.objects.filter(job__in=jobs[20:]).values_list("status", flat=True)) == {"in_progress"}


def test_a_walk_whose_start_openai_refuses_leaves_its_batches_to_single_reads(fake, monkeypatch, settings):
    jobs = _jobs_with_batches(fake, jobs=3, per_job=4)
    _place_all(monkeypatch, settings)
    reads = len(fake.requests("openai.retrieve"))
    # A bad request (here a 404 on the list): not the key, not a limit; the batches themselves
    # may be fine, so each is read on its own and no job backs off.
    fake.fail("openai.list", "404", times=1)
    _check_again(monkeypatch, jobs[:2])
    assert len(fake.requests("openai.retrieve")) == reads + 8
    for job in PollingJob.objects.filter(pk__in=[j.pk for j in jobs[:2]]):
        assert job.consecutive_failures == 0 and job.last_error == ""


def test_the_room_left_is_filled_with_jobs_that_may_be_taken_early(fake, monkeypatch, settings):
    # Two places left: the due job and one early one. The job due first of the soon ones would
    # be more than half its interval early; the next one qualifies and gets the place.
    settings.OPENAI_SWEEP_AHEAD_SECONDS = 5
    settings.DISPATCH_MAX_QUEUED = 12
    due, too_early, fits = _jobs_with_batches(fake, jobs=3, per_job=2)
    holders = _jobs_with_batches(fake, jobs=10, per_job=1, prefix="held")
    now = timezone.now()  # after making the jobs, which can take a second on a loaded machine
    PollingJob.objects.filter(pk=too_early.pk).update(
        next_check_at=now + timedelta(seconds=3.5), poll_interval_seconds=4
    )
    PollingJob.objects.filter(pk=fits.pk).update(next_check_at=now + timedelta(seconds=4))
    PollingJob.objects.filter(pk__in=[j.pk for j in holders]).update(
        lease_token="d:elsewhere", lease_expires_at=now + timedelta(minutes=5)
    )
    (message,) = _dispatch_once(monkeypatch)
    assert sorted(message[0]) == sorted([due.pk, fits.pk])


def test_each_walk_starts_right_above_its_own_batches_not_after_the_group_before(fake, monkeypatch, settings):
    jobs = _jobs_with_batches(fake, jobs=51, per_job=10)
    _place_all(monkeypatch, settings)
    reads, pages = len(fake.requests("openai.retrieve")), len(fake.requests("openai.list"))

    # Jobs 40-49 and 0-9 are due: two walks of a page each (the first after b_50_0, of a job
    # not due), with the 300 batches of jobs 10-39 between them. The second walk starts after
    # b_10_0, just above b_9_9, instead of after the first walk's last batch, three pages higher.
    _check_again(monkeypatch, jobs[40:50] + jobs[:10])
    walks = fake.requests("openai.list")[pages:]
    assert sorted(w["query"]["after"][0] for w in walks) == ["b_10_0", "b_50_0"]
    assert len(fake.requests("openai.retrieve")) == reads
    assert PollingJob.objects.filter(pk__in=[j.pk for j in jobs[:10]], last_error="").count() == 10


def test_a_walk_that_finds_none_of_its_batches_for_two_pages_leaves_them_to_a_second_sweep(
    fake, monkeypatch, settings
):
    jobs = _jobs_with_batches(fake, jobs=81, per_job=10)
    _place_all(monkeypatch, settings)
    reads, pages = len(fake.requests("openai.retrieve")), len(fake.requests("openai.list"))
    fake.set_batch("b_0_3", status="finalizing", completed=100, total=100)

    # One walk's group: jobs 71-79 and job 0, 700 batches further down the list. The walk shows
    # its page, then two without any of its batches, and stops; a second sweep starts right
    # above job 0's batches, instead of paging on through the seven pages between.
    _check_again(monkeypatch, jobs[71:80] + jobs[:1])
    walks = fake.requests("openai.list")[pages:]
    assert [w["query"]["after"][0] for w in walks] == ["b_80_0", "b_70_0", "b_60_0", "b_1_0"]
    assert len(fake.requests("openai.retrieve")) == reads
    assert JobBatch.objects.get(batch_id="b_0_3").status == "finalizing"
