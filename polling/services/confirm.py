"""Confirming what OpenAI's webhooks announced: read just the announced batches, trigger at once.

A verified `batch.*` event marks the batch as announced (`JobBatch.announced_at`) and asks for
one confirmation of its job (`confirm_request`). The confirmation (`job_confirm`, run by
`polling.tasks.confirm_job` on WEBHOOK_QUEUE, ahead of routine checks):
- takes the job's lease like any check (leases.py), so it never races a routine poll or a
  trigger: a job another worker holds is confirmed again a moment later;
- reads from OpenAI only the batches announced since the last confirmation (one GET each, or
  the key's list pages when fewer: `sweeps.batch_states`), and records the answers the way a
  routine check does (`polls.batches_apply`);
- triggers through `trigger.action_run` when every batch is terminal, exactly once;
- otherwise gives the job back with its schedule untouched: routine polling goes on as before.

The announcement itself changes nothing; only OpenAI's answer does. A forged or replayed event
therefore costs at most one read and can never complete a job.

Coalescing: the first event of a job sends the task (WEBHOOK_COALESCE_SECONDS later) and sets
`confirm_requested_at`; later events only mark their batch. The task clears the flag *before*
it reads the marks, and an event marks its batch (committed) *before* it looks at the flag, so
an event is never left with neither a task nor a mark read: either it saw the flag set and the
task reads its mark, or it saw the flag cleared and sent a task of its own.

Under a burst, each confirmation also takes other jobs whose requests are pending (their flags
set, nobody holding them), a few at a time, clearing their flags in the same claim; their own
tasks then find the flags cleared and do nothing. A job is taken only with its flag set, so the
rule above holds for every job of the group.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from polling.models import TERMINAL_BATCH_STATUSES, JobBatch, JobStatus, PollingJob, TriggerState
from polling.services.leases import lease_claim, lease_free, lease_release
from polling.services.polls import PollResult, batches_apply, openai_keys
from polling.services.schedules import DISPATCH_PREFIX
from polling.services.sweeps import batch_states
from polling.services.trigger import actions_run
from teckochecker.tasks_out import task_send

CONFIRM_TASK = "polling.tasks.confirm_job"
# A job another worker holds (a routine check: usually well under a second) is tried again
# this often, this many times; then its routine check is left to see the announced batches.
BUSY_RETRY_SECONDS = 1.0
BUSY_RETRIES = 10
# A request whose task was lost (broker restart, worker killed) stops holding back new ones
# after this long; routine polling covers the job meanwhile.
REQUEST_STALE_SECONDS = 60
# Most jobs one confirmation takes at once (job_confirm).
CONFIRM_GROUP_MAX = 10


def batches_announce(*, batch_id: str) -> list[int]:
    """Mark the unfinished batch `batch_id` of every active job as announced and ask for each
    such job's confirmation. Returns the ids of those jobs. Call it outside a transaction: the
    marks commit before the requests (see the module's docstring for why the order matters)."""
    now = timezone.now()
    with transaction.atomic():
        job_ids = batches_mark(batch_id=batch_id, now=now)
    for job_id in job_ids:
        confirm_request(job_id=job_id, now=now)
    return job_ids


def batches_mark(*, batch_id: str, now) -> list[int]:
    """Mark the unfinished batch `batch_id` of every active job as announced; returns those
    jobs' ids. The caller commits the marks, then calls `confirm_request` for each job (never
    inside the same transaction: a confirmation that cleared its flag meanwhile would not see an
    uncommitted mark, and nothing would read it)."""
    rows = JobBatch.objects.filter(batch_id=batch_id, job__status=JobStatus.ACTIVE).exclude(
        status__in=TERMINAL_BATCH_STATUSES
    )
    job_ids = sorted(set(rows.values_list("job_id", flat=True)))
    if job_ids:
        JobBatch.objects.filter(batch_id=batch_id, job_id__in=job_ids).update(announced_at=now)
    return job_ids


def confirm_request(*, job_id: int, now=None) -> bool:
    """Send the job's confirmation unless one is already on its way (then that one reads this
    request's batches too). True when this call sent it."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=REQUEST_STALE_SECONDS)
    requested = (
        PollingJob.objects.filter(pk=job_id, status=JobStatus.ACTIVE)
        .filter(Q(confirm_requested_at__isnull=True) | Q(confirm_requested_at__lt=stale))
        .update(confirm_requested_at=now)
    )
    if not requested:
        return False
    if not _send(job_id, countdown=settings.WEBHOOK_COALESCE_SECONDS):
        # The broker is down: let the next event try again; polling covers the job meanwhile.
        PollingJob.objects.filter(pk=job_id, confirm_requested_at=now).update(confirm_requested_at=None)
        return False
    return True


def confirmations_resume(*, job_ids: list[int]) -> int:
    """Start the confirmations that wait for any of `job_ids`, which a routine check has just
    given back: a confirmation that found its job busy would otherwise wait for its next try
    (BUSY_RETRY_SECONDS). One task per CONFIRM_GROUP_MAX waiting jobs, as each takes the others
    along. Returns how many jobs were waiting."""
    waiting = list(
        PollingJob.objects.filter(pk__in=job_ids, status=JobStatus.ACTIVE, confirm_requested_at__isnull=False)
        .order_by("confirm_requested_at")
        .values_list("pk", flat=True)
    )
    for start in range(0, len(waiting), CONFIRM_GROUP_MAX):
        _send(waiting[start], countdown=0)
    return len(waiting)


def _send(job_id: int, *, countdown: float, attempt: int = 0) -> bool:
    return task_send(
        CONFIRM_TASK,
        args=[job_id],
        kwargs={"attempt": attempt} if attempt else None,
        queue=settings.WEBHOOK_QUEUE,
        countdown=countdown,
    )


def job_confirm(*, job_id: int, attempt: int = 0) -> PollResult:
    """Confirm the batches announced for the job (see the module's docstring); `attempt` counts
    the tries that found the job busy. Outcomes: "busy" (another worker holds the job: tried
    again in BUSY_RETRY_SECONDS, the request stays pending), "skipped" (not active, nothing
    announced, a trigger already under way, or another confirmation took the request),
    "confirmed" (batches read, some unfinished) or the trigger's outcome.

    The confirmation also takes up to CONFIRM_GROUP_MAX - 1 other jobs whose requests are
    pending and free, and confirms them all with a fixed number of queries and their reads at
    once. Under a burst of events, confirmations wait for each other in the queue, and most of
    each one's time is its own round trips (message, claim, reads, writes, release), not its
    batches; taken together, a thread confirms several jobs in the time of one. When only
    this job is pending, this is the single confirmation it always was."""
    now = timezone.now()
    dispatched = Q(lease_token__startswith=DISPATCH_PREFIX)
    others = list(
        PollingJob.objects.filter(status=JobStatus.ACTIVE, confirm_requested_at__isnull=False)
        .filter(lease_free(now) | dispatched)
        .exclude(pk=job_id)
        .order_by("confirm_requested_at")
        .values_list("pk", flat=True)[: CONFIRM_GROUP_MAX - 1]
    )
    # A job is taken only while its request is pending (its flag is set): a flag cleared means
    # that another confirmation took the request, and reads its marks.
    rows = PollingJob.objects.filter(
        pk__in=[job_id, *others], status=JobStatus.ACTIVE, confirm_requested_at__isnull=False
    )
    # Like a forced check, a confirmation does not wait for a dispatched message in the queue.
    token, claimed = lease_claim(
        rows, seconds=settings.POLL_LEASE_SECONDS, now=now, take_over=dispatched, confirm_requested_at=None
    )
    jobs = (
        list(PollingJob.objects.filter(pk__in=[job_id, *others], lease_token=token).order_by("pk"))
        if claimed
        else []
    )
    outcome = None if any(job.pk == job_id for job in jobs) else _not_claimed(job_id, attempt=attempt)
    if jobs:
        try:
            results = _confirm_claimed(jobs, token=token, first=job_id)
        except BaseException:
            lease_release(PollingJob.objects.filter(pk__in=[job.pk for job in jobs]), token=token)
            raise
        outcome = outcome or results[job_id]
    return outcome


def _not_claimed(job_id: int, *, attempt: int) -> PollResult:
    """The outcome for a job this confirmation could not take."""
    pending = PollingJob.objects.filter(
        pk=job_id, status=JobStatus.ACTIVE, confirm_requested_at__isnull=False
    )
    if not pending.exists():
        return PollResult("skipped", "job is not active, or another confirmation took the request")
    if attempt < BUSY_RETRIES and _send(job_id, countdown=BUSY_RETRY_SECONDS, attempt=attempt + 1):
        return PollResult("busy", "another worker holds the job; trying again shortly")
    # Busy for too long or the broker is down: the routine check takes over; the next event may
    # ask again.
    pending.update(confirm_requested_at=None)
    return PollResult("skipped", "job stayed busy")


def _confirm_claimed(jobs: list[PollingJob], *, token: str, first: int) -> dict[int, PollResult]:
    """Confirm `jobs`, held under `token`; never leaves one held. The jobs whose every batch has
    now ended are triggered, `first` (the job whose message this is) first."""
    results: dict[int, PollResult] = {}
    batches_of: dict[int, list[JobBatch]] = {job.pk: [] for job in jobs}
    for batch in JobBatch.objects.filter(job_id__in=batches_of).order_by("pk"):
        batches_of[batch.job_id].append(batch)
    announced = {b.pk for batches in batches_of.values() for b in batches if b.announced_at is not None}
    if announced:
        JobBatch.objects.filter(pk__in=announced).update(announced_at=None)

    to_read: dict[int, list[JobBatch]] = {}
    for job in jobs:
        if job.trigger_state != TriggerState.NONE:
            # A trigger is being sent or waits for its retry: that schedule is the trigger's.
            results[job.pk] = PollResult("skipped", "a trigger is under way")
            continue
        batches = [b for b in batches_of[job.pk] if b.pk in announced]
        to_read[job.pk] = [b for b in batches if b.status not in TERMINAL_BATCH_STATUSES]
    # A job without a usable key is left to its routine check, which fails it with the reason.
    keys = {
        pk: value
        for pk, value in openai_keys([job for job in jobs if to_read.get(job.pk)]).items()
        if isinstance(value, str)
    }
    for job in jobs:
        if to_read.get(job.pk) and job.pk not in keys:
            results[job.pk] = PollResult("skipped", "no usable OpenAI key")
    reads = {pk: batches for pk, batches in to_read.items() if batches and pk in keys}
    if reads:
        # Read errors are left to routine polling and its backoff: a confirmation only adds.
        # Several batches of one job are read from the key's list when that takes fewer
        # requests, as a routine check would (sweeps.py); the jobs' batches are read at once.
        answers = batch_states(
            [(keys[pk], b) for pk, batches in reads.items() for b in batches], for_confirmation=True
        )
        batches_apply(
            answers={
                pk: [(b, answers[(keys[pk], b.batch_id)]) for b in batches] for pk, batches in reads.items()
            }
        )

    finished: list[int] = []
    for job in jobs:
        if job.pk in results:
            continue
        batches = batches_of[job.pk]
        done = sum(1 for b in batches if b.status in TERMINAL_BATCH_STATUSES)
        if done == len(batches):
            finished.append(job.pk)
        elif not to_read.get(job.pk):
            results[job.pk] = PollResult("skipped", "nothing announced")
        else:
            results[job.pk] = PollResult("confirmed", f"{done}/{len(batches)} batches terminal")
    finished.sort(key=lambda pk: pk != first)
    # The jobs not finished are given back at once; the finished ones are triggered here, side
    # by side. Handing them to tasks of their own was measured slower: under a burst those
    # tasks queue behind every event's own task.
    lease_release(PollingJob.objects.filter(pk__in=list(results)), token=token)
    for pk, outcome in actions_run(job_ids=finished, lease_token=token).items():
        results[pk] = PollResult(outcome.state, outcome.detail)
    return results
