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
  other due jobs wait in the database, the longest-due first, so no lease expires in the queue;
- with list sweeps on (OPENAI_SWEEP), the jobs of an OpenAI key that is due are sent together,
  with that key's jobs due within OPENAI_SWEEP_AHEAD_SECONDS, so that one sweep of the key's
  list serves them all (sweeps.py); nothing of that key is due again until those come round.

Why not one django-celery-beat PeriodicTask per job: beat reloads every PeriodicTask whenever
any one changes, and each job would change its task when it is created, paused, resumed or
finished. At 10,000 jobs beat would spend its time reloading; see docs/BENCHMARKS.md.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, IntegerField, Q, Value
from django.utils import timezone

from polling.models import JobStatus, PollingJob, TriggerState
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
SWEEP_GROUP_MAX = 2000  # most jobs of one key in one message (one worker thread checks them)


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
    ahead = dispatch_ahead()
    due_jobs = PollingJob.objects.filter(status=JobStatus.ACTIVE, next_check_at__lte=now)
    candidates = list(
        due_jobs.filter(lease_free(now))
        .order_by("next_check_at")
        .values_list("pk", "openai_secret_id")[:room]
    )
    if not candidates:
        return 0
    if ahead and len(candidates) < room:
        keys = {secret_id for _, secret_id in candidates if secret_id}
        # Only jobs on their routine cadence are taken early. A job in backoff, or whose trigger
        # waits for its retry, keeps its due time: it may be a server's Retry-After. And never
        # more than half its own interval early, and only half an interval or more after its last
        # read: a check that read late keeps its cadence (next_due), and taking the next one
        # early as well could bring two reads of a batch together. Both in SQL, so that the room
        # left is filled with jobs that qualify.
        seconds = ExpressionWrapper(F("poll_interval_seconds"), IntegerField())  # as SQLite multiplies
        half_interval = ExpressionWrapper(seconds * Value(timedelta(seconds=0.5)), DurationField())
        soon = PollingJob.objects.filter(
            lease_free(now),
            status=JobStatus.ACTIVE,
            consecutive_failures=0,
            trigger_state=TriggerState.NONE,
            next_check_at__gt=now,
            next_check_at__lte=now + timedelta(seconds=ahead),
            openai_secret_id__in=keys,
        ).filter(
            Q(last_check_at__isnull=True)
            | Q(
                last_check_at__lte=ExpressionWrapper(
                    Value(now, DateTimeField()) - half_interval, DateTimeField()
                )
            ),
            next_check_at__lte=ExpressionWrapper(
                Value(now, DateTimeField()) + half_interval, DateTimeField()
            ),
        )
        candidates += list(
            soon.order_by("next_check_at").values_list("pk", "openai_secret_id")[: room - len(candidates)]
        )
    # The same conditions again inside the claim: a forced check may have run since the SELECT.
    token, _ = lease_claim(
        PollingJob.objects.filter(
            status=JobStatus.ACTIVE,
            next_check_at__lte=now + timedelta(seconds=ahead),
            pk__in=[pk for pk, _ in candidates],
        ),
        seconds=settings.DISPATCH_LEASE_SECONDS,
        now=now,
        token=lease_token_new(prefix=DISPATCH_PREFIX),
    )
    claimed = list(
        PollingJob.objects.filter(pk__in=[pk for pk, _ in candidates], lease_token=token)
        .order_by("next_check_at")
        .values_list("pk", "openai_secret_id")
    )
    messages = _messages(claimed, chunk=chunk, by_key=bool(ahead))
    sent = 0
    for number, ids in enumerate(messages):
        if not task_send("polling.tasks.poll_jobs", args=[ids, token]):
            # The broker is down: give the unsent jobs back for the next run.
            unsent = [pk for rest in messages[number:] for pk in rest]
            lease_release(PollingJob.objects.filter(pk__in=unsent), token=token)
            return sent
        sent += len(ids)
    return sent


def jobs_hand_over(*, job_ids: list[int], token: str, chunk: int = DISPATCH_CHUNK) -> list[int]:
    """Move jobs held under the poll lease `token` to a fresh dispatch lease and send them in
    chunks of `chunk` (a sweep group hands its finished jobs on, so their actions run on every
    worker thread). The dispatcher leaves them alone meanwhile, and the messages' checks take
    them over by the new token. Returns the ids handed over; if the broker is down, the jobs
    are released instead and the dispatcher sends them again."""
    now = timezone.now()
    new = lease_token_new(prefix=DISPATCH_PREFIX)
    PollingJob.objects.filter(pk__in=job_ids, lease_token=token).update(
        lease_token=new, lease_expires_at=now + timedelta(seconds=settings.DISPATCH_LEASE_SECONDS)
    )
    moved = list(PollingJob.objects.filter(pk__in=job_ids, lease_token=new).values_list("pk", flat=True))
    for start in range(0, len(moved), chunk):
        if not task_send("polling.tasks.poll_jobs", args=[moved[start : start + chunk], new]):
            lease_release(PollingJob.objects.filter(pk__in=moved[start:]), token=new)
            break
    return moved


def dispatch_ahead() -> int:
    """How many seconds early a key's jobs may be checked with that key's due ones (0: none)."""
    return settings.OPENAI_SWEEP_AHEAD_SECONDS if settings.OPENAI_SWEEP else 0


def _messages(claimed: list[tuple[int, int | None]], *, chunk: int, by_key: bool) -> list[list[int]]:
    """The job ids of each poll_jobs message, in due order: chunks of `chunk`; with `by_key`, a
    key with at least `chunk` jobs here gets messages of its own (up to SWEEP_GROUP_MAX jobs
    each) so that one sweep reads them all, and the other jobs share chunks as before."""
    groups: dict[int | None, list[int]] = {}
    for pk, secret_id in claimed:
        groups.setdefault(secret_id, []).append(pk)
    messages, rest = [], []
    for ids in groups.values():
        if by_key and len(ids) >= chunk:
            messages += [ids[i : i + SWEEP_GROUP_MAX] for i in range(0, len(ids), SWEEP_GROUP_MAX)]
        else:
            rest += ids
    order = {pk: n for n, (pk, _) in enumerate(claimed)}
    rest.sort(key=order.__getitem__)
    return messages + [rest[i : i + chunk] for i in range(0, len(rest), chunk)]


def enqueue_poll(*, job_id: int, force: bool = False) -> None:
    """Ask a worker to check the job right after the current transaction commits. If the broker
    is down, the dispatcher still checks the job when it is due."""
    # When it was asked (epoch seconds): a check that read the batches after that answers it.
    kwargs = {"force": force, "asked_at": timezone.now().timestamp()} if force else {"force": force}
    task_send_on_commit("polling.tasks.poll_job", args=[job_id], kwargs=kwargs)
