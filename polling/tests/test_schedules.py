"""The dispatcher: which jobs beat sends to the workers, and how it stays in step with them."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from polling.models import JobStatus, PollingJob
from polling.services import job_delete, job_pause, job_resume, schedules_sync_all
from polling.services.schedules import DISPATCH_PREFIX
from polling.tests.factories import PollingJobFactory

pytestmark = pytest.mark.django_db


def test_dispatch_sends_exactly_the_due_active_jobs_nobody_holds(dispatch):
    now = timezone.now()
    due = PollingJobFactory(next_check_at=now - timedelta(seconds=5))
    also_due = PollingJobFactory(next_check_at=now)
    PollingJobFactory(next_check_at=now + timedelta(seconds=30))  # not due (or in backoff)
    PollingJobFactory(status=JobStatus.PAUSED, next_check_at=now)
    PollingJobFactory(status=JobStatus.COMPLETED, next_check_at=now)
    PollingJobFactory(next_check_at=now, lease_token="a" * 32, lease_expires_at=now + timedelta(minutes=5))

    assert dispatch() == [due.pk, also_due.pk]  # the longest overdue first
    ((ids, token),) = dispatch.messages
    assert token.startswith(DISPATCH_PREFIX)
    assert set(PollingJob.objects.filter(lease_token=token).values_list("id", flat=True)) == set(ids)
    # Claimed in the database: the next second (or a restarted beat) sends them again never.
    assert dispatch() == []


def test_dispatch_sends_chunks_and_respects_its_limit(dispatch):
    jobs = [PollingJobFactory(next_check_at=timezone.now() - timedelta(seconds=60 - i)) for i in range(25)]
    assert dispatch(chunk=10, limit=20) == [j.pk for j in jobs[:20]]
    assert [len(ids) for ids, _ in dispatch.messages] == [10, 10]
    assert dispatch(chunk=10, limit=20) == [j.pk for j in jobs[20:]]


def test_when_workers_fall_behind_due_jobs_wait_in_the_database_longest_due_first(dispatch, settings):
    settings.DISPATCH_MAX_QUEUED = 12
    jobs = [PollingJobFactory(next_check_at=timezone.now() - timedelta(seconds=60 - i)) for i in range(20)]
    assert dispatch() == [j.pk for j in jobs[:12]]
    assert dispatch() == []  # the twelve still wait for a worker: nothing more is sent
    # A worker checks five of them (its poll lease replaces the dispatch lease)...
    PollingJob.objects.filter(pk__in=[j.pk for j in jobs[:5]]).update(
        lease_token="worker", lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    # ...which makes room for the five that have been due longest.
    assert dispatch() == [j.pk for j in jobs[12:17]]
    # Expired dispatch leases (lost messages) take no room.
    PollingJob.objects.filter(lease_token__startswith="d:").update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert sorted(dispatch()) == sorted([j.pk for j in jobs[5:12]] + [j.pk for j in jobs[12:]])[:12]


def test_an_expired_dispatch_lease_is_dispatched_again(dispatch):
    job = PollingJobFactory()
    assert dispatch() == [job.pk]
    # The message was lost (broker restarted): the lease runs out and the job comes back.
    PollingJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert dispatch() == [job.pk]


def test_pause_resume_delete_keep_the_dispatcher_in_step(dispatch):
    job = PollingJobFactory(next_check_at=timezone.now() - timedelta(seconds=1))
    job_pause(job=job)
    assert dispatch() == []
    job_resume(job=job)
    assert dispatch() == [job.pk]  # due at once (resume also queues a forced check)
    other = PollingJobFactory()
    job_delete(job=other)
    assert dispatch() == []


def test_sync_repairs_jobs_and_is_idempotent():
    lost = PollingJobFactory(next_check_at=None)
    PollingJobFactory(status=JobStatus.COMPLETED, next_check_at=None)
    first = schedules_sync_all()
    assert first == {"jobs": 2, "changed": 1}
    lost.refresh_from_db()
    assert lost.next_check_at is not None and lost.next_check_at <= timezone.now()
    assert schedules_sync_all() == {"jobs": 2, "changed": 0}


def test_sync_releases_dispatch_leases_of_inactive_jobs_only():
    job = PollingJobFactory(
        status=JobStatus.PAUSED,
        lease_token=f"{DISPATCH_PREFIX}x",
        lease_expires_at=timezone.now() + timedelta(minutes=2),
    )
    active = PollingJobFactory(
        lease_token=f"{DISPATCH_PREFIX}y", lease_expires_at=timezone.now() + timedelta(minutes=2)
    )
    assert schedules_sync_all() == {"jobs": 2, "changed": 1}
    job.refresh_from_db()
    assert job.lease_token == "" and job.lease_expires_at is None
    active.refresh_from_db()
    assert active.lease_token == f"{DISPATCH_PREFIX}y"  # its message is still on the way


def test_the_migration_removes_per_job_periodic_tasks_and_nothing_else():
    from importlib import import_module

    from django.apps import apps
    from django_celery_beat.models import PeriodicTasks

    migration = import_module("polling.migrations.0003_remove_per_job_periodic_tasks")
    every = IntervalSchedule.objects.create(every=60, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="teckochecker.poll-job.7", task="polling.tasks.poll_job", interval=every)
    PeriodicTask.objects.create(name="someone-else", task="polling.tasks.prune_logs", interval=every)
    PeriodicTasks.objects.all().delete()

    migration.remove_per_job_tasks(apps, None)

    assert list(PeriodicTask.objects.values_list("name", flat=True)) == ["someone-else"]
    assert PeriodicTasks.objects.get(ident=1).last_update is not None  # a running beat reloads
