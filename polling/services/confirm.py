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
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from polling.models import TERMINAL_BATCH_STATUSES, JobBatch, JobStatus, PollingJob, TriggerState
from polling.services.leases import lease_claim, lease_release
from polling.services.polls import PollResult, batches_apply
from polling.services.schedules import DISPATCH_PREFIX
from polling.services.sweeps import batch_states
from polling.services.trigger import action_run
from secrets_vault.exceptions import SecretUnreadable
from secrets_vault.services import secrets_reveal
from teckochecker.tasks_out import task_send

CONFIRM_TASK = "polling.tasks.confirm_job"
# A job another worker holds (a routine check: usually well under a second) is tried again
# this often, this many times; then its routine check is left to see the announced batches.
BUSY_RETRY_SECONDS = 1.0
BUSY_RETRIES = 10
# A request whose task was lost (broker restart, worker killed) stops holding back new ones
# after this long; routine polling covers the job meanwhile.
REQUEST_STALE_SECONDS = 60


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
    announced, or a trigger already under way), "confirmed" (batches read, some unfinished) or
    the trigger's outcome."""
    now = timezone.now()
    rows = PollingJob.objects.filter(pk=job_id, status=JobStatus.ACTIVE)
    # Like a forced check, a confirmation does not wait for a dispatched message in the queue.
    token, claimed = lease_claim(
        rows,
        seconds=settings.POLL_LEASE_SECONDS,
        now=now,
        take_over=Q(lease_token__startswith=DISPATCH_PREFIX),
        confirm_requested_at=None,
    )
    if not claimed:
        if rows.exists() and attempt < BUSY_RETRIES:
            if _send(job_id, countdown=BUSY_RETRY_SECONDS, attempt=attempt + 1):
                return PollResult("busy", "another worker holds the job; trying again shortly")
        # Not active any more, busy for too long or the broker is down: the routine check (or
        # nothing, for a finished job) takes over; the next event may ask again.
        PollingJob.objects.filter(pk=job_id).update(confirm_requested_at=None)
        return PollResult("skipped", "job is not active or stayed busy")
    try:
        return _confirm_claimed(job_id, token=token)
    except BaseException:
        lease_release(PollingJob.objects.filter(pk=job_id), token=token)
        raise


def _confirm_claimed(job_id: int, *, token: str) -> PollResult:
    job = PollingJob.objects.get(pk=job_id)
    batches = list(JobBatch.objects.filter(job_id=job_id).order_by("pk"))
    announced = [b for b in batches if b.announced_at is not None]
    if announced:
        JobBatch.objects.filter(pk__in=[b.pk for b in announced]).update(announced_at=None)
    to_read = [b for b in announced if b.status not in TERMINAL_BATCH_STATUSES]
    if job.trigger_state != TriggerState.NONE:
        # A trigger is being sent or waits for its retry: that schedule is the trigger's.
        lease_release(job, token=token)
        return PollResult("skipped", "a trigger is under way")
    if to_read:
        key = _api_key(job)
        if key is None:  # the routine check fails the job with the reason
            lease_release(job, token=token)
            return PollResult("skipped", "no usable OpenAI key")
        # Several announced batches (events that joined one confirmation) are read from the key's
        # list when that takes fewer requests, as a routine check would (sweeps.py).
        answers = batch_states([(key, b) for b in to_read])
        # Read errors are left to routine polling and its backoff: a confirmation only adds.
        batches_apply(answers={job_id: [(b, answers[(key, b.batch_id)]) for b in to_read]})
    if all(b.status in TERMINAL_BATCH_STATUSES for b in batches):
        outcome = action_run(job_id=job_id, lease_token=token)
        if outcome.state == "skipped":  # paused meanwhile: give the job back as it is
            lease_release(job, token=token)
        return PollResult(outcome.state, outcome.detail)
    lease_release(job, token=token)
    if not to_read:
        return PollResult("skipped", "nothing announced")
    done = sum(1 for b in batches if b.status in TERMINAL_BATCH_STATUSES)
    return PollResult("confirmed", f"{done}/{len(batches)} batches terminal")


def _api_key(job: PollingJob) -> str | None:
    if not job.openai_secret_id:
        return None
    value = secrets_reveal(secret_ids={job.openai_secret_id}).get(job.openai_secret_id)
    return None if value is None or isinstance(value, SecretUnreadable) else value
