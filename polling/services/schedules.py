"""When jobs are checked: one dispatcher reads `PollingJob.next_check_at`, no task per job.

Beat calls `jobs_dispatch_due` about once a second (polling/scheduler.py). It claims every due
active job in bulk with a *dispatch lease* (a conditional UPDATE: only jobs nobody holds) and
sends their ids to the workers in small chunks (`polling.tasks.poll_jobs`). A worker turns the
dispatch lease into its own poll lease (polls.py), so:
- a job is never in two dispatches at once, even across a beat restart (the lease is in the
  database, not in beat's memory); a lost message only delays the job until the lease expires;
- a check that is forced (create, resume, check now) takes over a dispatch lease, and the
  dispatched message then finds the lease gone and does nothing;
- backoff and pause need nothing here: a job in backoff is not due, a paused job not active;
- when the workers fall behind, at most DISPATCH_MAX_QUEUED dispatched jobs wait for them; the
  other due jobs wait in the database, the longest-due first, so no lease expires in the queue.

Why not one django-celery-beat PeriodicTask per job: beat reloads every PeriodicTask whenever
any one changes, and each job would change its task when it is created, paused, resumed or
finished. At 10,000 jobs beat would spend its time reloading; see docs/BENCHMARKS.md.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from polling.models import JobStatus, PollingJob
from polling.services.leases import (
    RELEASED,
    lease_claim,
    lease_free,
    lease_held,
    lease_release,
    lease_token_new,
)
from teckochecker.tasks_out import task_send, task_send_on_commit

# Dispatch lease tokens start with this; poll lease tokens are uuid4 hex, which never contains ":".
DISPATCH_PREFIX = "d:"
DISPATCH_CHUNK = 10  # jobs per poll_jobs task: fewer messages, still spread over the threads
DISPATCH_LIMIT = 5000  # jobs per dispatcher run; the rest wait for the next second


def schedules_sync_all() -> dict[str, int]:
    """Repair every job's schedule. Idempotent; run on start and deploy.

    "changed": active jobs without a due time (a row edited by hand or restored from a backup;
    now due at once) plus finished or paused jobs still holding a dispatch lease (released).
    """
    now = timezone.now()
    with transaction.atomic():
        jobs = PollingJob.objects.count()
        repaired = PollingJob.objects.filter(status=JobStatus.ACTIVE, next_check_at__isnull=True).update(
            next_check_at=now
        )
        released = (
            PollingJob.objects.exclude(status=JobStatus.ACTIVE)
            .filter(lease_token__startswith=DISPATCH_PREFIX)
            .update(**RELEASED)
        )
    return {"jobs": jobs, "changed": repaired + released}


def schedules_overdue(*, grace_seconds: float = 60) -> int:
    """Active jobs due more than `grace_seconds` ago that nobody holds (for `doctor`)."""
    now = timezone.now()
    return (
        PollingJob.objects.filter(
            status=JobStatus.ACTIVE, next_check_at__lt=now - timedelta(seconds=grace_seconds)
        )
        .filter(lease_free(now))
        .count()
    )


def jobs_dispatch_due(*, limit: int = DISPATCH_LIMIT, chunk: int = DISPATCH_CHUNK) -> int:
    """Claim the active jobs that are due and send them to the workers; returns how many."""
    now = timezone.now()
    # Backpressure: jobs already dispatched and still waiting for a worker take up room.
    queued = PollingJob.objects.filter(
        lease_held(now), status=JobStatus.ACTIVE, lease_token__startswith=DISPATCH_PREFIX
    ).count()
    room = min(limit, settings.DISPATCH_MAX_QUEUED - queued)
    if room <= 0:
        return 0
    due_jobs = PollingJob.objects.filter(status=JobStatus.ACTIVE, next_check_at__lte=now)
    candidates = list(
        due_jobs.filter(lease_free(now)).order_by("next_check_at").values_list("pk", flat=True)[:room]
    )
    if not candidates:
        return 0
    # The same conditions again inside the claim: a forced check may have run since the SELECT.
    token, _ = lease_claim(
        due_jobs.filter(pk__in=candidates),
        seconds=settings.DISPATCH_LEASE_SECONDS,
        now=now,
        token=lease_token_new(prefix=DISPATCH_PREFIX),
    )
    claimed = list(
        PollingJob.objects.filter(pk__in=candidates, lease_token=token)
        .order_by("next_check_at")
        .values_list("pk", flat=True)
    )
    for start in range(0, len(claimed), chunk):
        if not task_send("polling.tasks.poll_jobs", args=[claimed[start : start + chunk], token]):
            # The broker is down: give the unsent jobs back for the next run.
            lease_release(PollingJob.objects.filter(pk__in=claimed[start:]), token=token)
            return start
    return len(claimed)


def enqueue_poll(*, job_id: int, force: bool = False) -> None:
    """Ask a worker to check the job right after the current transaction commits. If the broker
    is down, the dispatcher still checks the job when it is due."""
    task_send_on_commit("polling.tasks.poll_job", args=[job_id], kwargs={"force": force})
