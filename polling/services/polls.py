"""One check of one polling job: claim it, read its batches from OpenAI, maybe trigger Keboola.

Concurrency rules (see docs in README "How polling works"):
- A worker first takes a lease on the job (leases.py: a conditional UPDATE); a second worker
  (or a duplicate message) finds the lease taken and does nothing. A dead worker's lease expires.
- The dispatcher (schedules.py) hands due jobs over under a dispatch lease; only the message
  carrying that token, or a forced check, may turn it into a poll lease.
- A check that is not due yet (a duplicate message, backoff in force) does nothing unless
  forced (create, resume, check now, a webhook).
- Every write at the end is conditional on still holding the lease.

`polling.integrations.openai` (and with it the OpenAI SDK, about 23 MB) is imported where it
is used: beat imports this module through the tasks but never polls.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from polling.models import (
    TERMINAL_BATCH_STATUSES,
    JobBatch,
    JobStatus,
    LogLevel,
    PollingJob,
    TriggerState,
)
from polling.services.bulk import update_rows
from polling.services.jobs import job_fail
from polling.services.leases import (
    backoff_seconds,
    due,
    is_due,
    lease_claim,
    lease_release,
    lease_release_each,
)
from polling.services.logs import log_event, log_events
from polling.services.schedules import DISPATCH_CHUNK, DISPATCH_PREFIX, dispatch_ahead, jobs_hand_over
from polling.services.trigger import TriggerOutcome, action_run
from secrets_vault.exceptions import SecretUnreadable
from secrets_vault.services import secrets_reveal
from teckochecker.integrations import CredentialsRejected, ResourceNotFound

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollResult:
    """What one call of `job_poll` did: skipped (and why), checked, triggered, failed."""

    outcome: str
    detail: str = ""


def _claim(rows, *, now, take_over: Q | None = None) -> tuple[str, int]:
    """Claim the active jobs among `rows` for one check (POLL_LEASE_SECONDS)."""
    return lease_claim(
        rows.filter(status=JobStatus.ACTIVE),
        seconds=settings.POLL_LEASE_SECONDS,
        now=now,
        take_over=take_over,
    )


def job_poll(*, job_id: int, force: bool = False, asked_at: float | None = None) -> PollResult:
    """Check one job now if it is due (or `force`: create, resume, check now, a webhook).
    Safe to call from any number of workers at once. A forced check asked at `asked_at` (epoch
    seconds) is answered by any read of the batches since: a routine check that came first
    (a new job is also due at once) is not followed by a second read a moment later."""
    now = timezone.now()
    job = PollingJob.objects.filter(pk=job_id).first()
    if job is None:
        return PollResult("skipped", "no such job")
    if job.status != JobStatus.ACTIVE:
        return PollResult("skipped", f"job is {job.status}")
    if not force and not is_due(job.next_check_at, now):
        return PollResult("skipped", "not due")
    # A forced check does not wait for a dispatched message still in the queue.
    take_over = Q(lease_token__startswith=DISPATCH_PREFIX) if force else None
    rows = PollingJob.objects.filter(pk=job.pk)
    if force and asked_at is not None:
        asked = datetime.fromtimestamp(asked_at, tz=UTC)
        rows = rows.filter(Q(last_check_at__isnull=True) | Q(last_check_at__lt=asked))
    token, claimed = _claim(rows, now=now, take_over=take_over)
    if not claimed:
        return PollResult("skipped", "another worker holds the job, or read it since the check was asked")
    return _check_claimed([job], token=token, now=now)[job_id]


def jobs_poll(*, job_ids: list[int], dispatch_token: str) -> dict[int, PollResult]:
    """Check the jobs one dispatch sent together (polling.tasks.poll_jobs).

    The same rules as `job_poll` for each job, with a fixed number of queries for all of them:
    one conditional UPDATE claims every job that is active, due, and free or still under
    `dispatch_token`; their batches are read from OpenAI concurrently; the jobs where nothing
    but the time of the check changed are released together (one pipelined UPDATE).
    """
    now = timezone.now()
    results = {
        job_id: PollResult("skipped", "not due, not active or held by another worker") for job_id in job_ids
    }
    # A key's jobs due within the next few seconds come with its due ones (schedules.py).
    ahead = timedelta(seconds=dispatch_ahead())
    # Early only while this message still holds the job: the dispatcher took it early on purpose.
    # A job the message no longer holds (its lease lapsed and a newer message checked it) is
    # checked only when really due, so a late or repeated message never checks it twice at once.
    due_jobs = PollingJob.objects.filter(pk__in=job_ids).filter(
        (Q(lease_token=dispatch_token) & due("next_check_at", now + ahead)) | due("next_check_at", now)
    )
    token, claimed = _claim(due_jobs, now=now, take_over=Q(lease_token=dispatch_token))
    if claimed:
        jobs = list(PollingJob.objects.filter(pk__in=job_ids, lease_token=token).order_by("pk"))
        results.update(_check_claimed(jobs, token=token, now=now, ahead=ahead))
    return results


def _check_claimed(
    jobs: list[PollingJob], *, token: str, now, ahead: timedelta = timedelta(0)
) -> dict[int, PollResult]:
    """Check jobs this worker holds under `token`; never leaves one of them held. `ahead`: how
    early the jobs may have been sent (their cadence stays on their due times)."""
    results: dict[int, PollResult] = {}
    try:
        _check_claimed_jobs(jobs, token=token, now=now, results=results, ahead=ahead)
    except Exception:
        # Never leave a job stuck: release the lease and back off; the error goes to the log.
        logger.exception("unexpected error while polling job(s) %s", ", ".join(str(j.pk) for j in jobs))
        for job in jobs:
            # A job marked for handing over may not have been handed over yet: release it too.
            if job.pk in results and results[job.pk].outcome != "handed_over":
                continue
            results[job.pk] = _unexpected_error(job, token=token, now=now)
    return results


def _unexpected_error(job: PollingJob, *, token: str, now) -> PollResult:
    failures = job.consecutive_failures + 1
    delay = backoff_seconds(
        base=job.poll_interval_seconds, failures=failures, cap=settings.POLL_MAX_BACKOFF_SECONDS
    )
    if lease_release(
        job, token=token, consecutive_failures=failures, next_check_at=now + timedelta(seconds=delay)
    ):
        log_event(
            job_id=job.pk,
            status="error",
            message=f"Unexpected error while checking; retrying in {delay:.0f}s.",
            level=LogLevel.ERROR,
        )
    return PollResult("error", "unexpected error")


def _check_claimed_jobs(
    jobs: list[PollingJob], *, token: str, now, results: dict[int, PollResult], ahead: timedelta
) -> None:
    # In a check of many jobs (a key's sweep group), the jobs whose action is due are handed on
    # in small chunks (schedules.jobs_hand_over) so their actions run on every worker thread,
    # not one after another in this one.
    hand_over: list[int] = []
    many = len(jobs) > DISPATCH_CHUNK

    def finish(job: PollingJob) -> PollResult:
        if many:
            hand_over.append(job.pk)
            return PollResult("handed_over", "every batch is terminal: the action runs in a chunk of its own")
        return _finish_with_trigger(job, token=token, now=now)

    batches_of: dict[int, list[JobBatch]] = {job.pk: [] for job in jobs}
    for batch in JobBatch.objects.filter(job_id__in=batches_of).order_by("pk"):
        batches_of[batch.job_id].append(batch)

    # Jobs whose action is half done, or whose batches are all terminal: straight to the trigger.
    to_read: list[PollingJob] = []
    for job in jobs:
        if job.trigger_state in (TriggerState.SENDING, TriggerState.RETRY) or _all_terminal(
            batches_of[job.pk]
        ):
            results[job.pk] = finish(job)
        else:
            to_read.append(job)
    if not to_read:
        jobs_hand_over(job_ids=hand_over, token=token)
        return

    keys = _api_keys(to_read, results)
    answers = batches_read(jobs=[job for job in to_read if job.pk in keys], keys=keys, batches_of=batches_of)
    # The next check counts from when the batches were read, not from when this check began: a
    # big group can wait seconds for its reads, and a check due one interval after the start
    # would then read a batch again moments after this one did.
    now = timezone.now()
    errors_of = batches_apply(answers=answers)

    checked: dict[int, datetime] = {}
    for job in to_read:
        if job.pk in results:
            continue
        batches = batches_of[job.pk]
        if job.pk in errors_of:
            results[job.pk] = _handle_openai_errors(job, errors_of[job.pk], token=token, now=now)
        elif _all_terminal(batches):
            results[job.pk] = finish(job)
        else:
            checked[job.pk] = next_due(job, now=now, ahead=ahead)
            done = sum(1 for b in batches if b.status in TERMINAL_BATCH_STATUSES)
            results[job.pk] = PollResult("checked", f"{done}/{len(batches)} batches terminal")
    checked_release(checked=checked, token=token, now=now)
    jobs_hand_over(job_ids=hand_over, token=token)
    from polling.services.confirm import confirmations_resume  # confirm.py uses this module

    confirmations_resume(job_ids=list(checked))


def _all_terminal(batches: list[JobBatch]) -> bool:
    return all(b.status in TERMINAL_BATCH_STATUSES for b in batches)


def batches_read(
    *, jobs: list[PollingJob], keys: dict[int, str], batches_of: dict[int, list[JobBatch]]
) -> dict[int, list[tuple[JobBatch, object]]]:
    """Ask OpenAI about every unfinished batch of `jobs` at once (each with its job's key in
    `keys`): per key, by sweeping its list of batches when that takes fewer requests, else one
    read per batch (sweeps.py). Returns, per job, each such batch with its answer: a
    `BatchInfo` or the outcome (`teckochecker.integrations`) its read raised. Changes nothing."""
    from polling.services.sweeps import batch_states

    unfinished = {
        job.pk: [b for b in batches_of[job.pk] if b.status not in TERMINAL_BATCH_STATUSES] for job in jobs
    }
    answers = batch_states([(keys[job_id], b) for job_id, batches in unfinished.items() for b in batches])
    return {
        job_id: [(b, answers[(keys[job_id], b.batch_id)]) for b in batches]
        for job_id, batches in unfinished.items()
    }


def batches_apply(*, answers: dict[int, list[tuple[JobBatch, object]]]) -> dict[int, list]:
    """Record what `batches_read` found: update the batches in memory, store those that changed
    (one statement) and log their status changes. Returns, per job with any, its failed reads
    as (batch, error) pairs."""
    from polling.integrations import openai as openai_api

    changed: list[JobBatch] = []
    errors_of: dict[int, list] = {}
    for job_id, pairs in answers.items():
        for batch, answer in pairs:
            if isinstance(answer, openai_api.BatchInfo):
                if _apply_batch_info(batch, answer):
                    changed.append(batch)
            else:
                errors_of.setdefault(job_id, []).append((batch, answer))
    _store_batches(changed)
    return errors_of


def checked_release(*, checked: dict[int, datetime], token: str, now: datetime) -> None:
    """Release the jobs held under `token` whose check found nothing to act on: each is due
    again at its time in `checked` and its failure streak ends. One round trip for all of them;
    a job whose lease lapsed meanwhile is left to its new holder."""
    lease_release_each(
        PollingJob,
        token=token,
        changes={
            pk: {"last_check_at": now, "next_check_at": due_at, "consecutive_failures": 0, "last_error": ""}
            for pk, due_at in checked.items()
        },
    )


def next_due(job: PollingJob, *, now: datetime, ahead: timedelta = timedelta(0)) -> datetime:
    """When a checked job is due again: one interval after this check was *due*, not after it
    ran, so the moment the dispatcher and the queue take does not add up from check to check.
    A check ahead of time (check now, resume) or late by half an interval or more (a restart,
    a backlog) starts the cadence again from now: two checks are never closer than half an
    interval. A check sent with its key's due jobs up to `ahead` early keeps the cadence too."""
    interval = timedelta(seconds=job.poll_interval_seconds)
    early = min(ahead, interval / 2)
    if job.next_check_at is not None and now - interval / 2 < job.next_check_at <= now + early:
        return job.next_check_at + interval
    return now + interval


def openai_keys(jobs: list[PollingJob]) -> dict[int, str | SecretUnreadable | None]:
    """Each job's OpenAI key, read in one query: the value, the `SecretUnreadable` error, or
    None when the job has no secret (any more)."""
    values = secrets_reveal(secret_ids={job.openai_secret_id for job in jobs if job.openai_secret_id})
    return {job.pk: values.get(job.openai_secret_id) if job.openai_secret_id else None for job in jobs}


def _api_keys(jobs: list[PollingJob], results: dict[int, PollResult]) -> dict[int, str]:
    """Each job's usable OpenAI key (`openai_keys`); a job without one fails (in `results`)."""
    keys: dict[int, str] = {}
    for job_id, value in openai_keys(jobs).items():
        if value is None:
            job_fail(job_id=job_id, reason="The job's OpenAI secret no longer exists.")
            results[job_id] = PollResult("failed", "no secret")
        elif isinstance(value, SecretUnreadable):
            job_fail(job_id=job_id, reason=value.detail)
            results[job_id] = PollResult("failed", "unreadable secret")
        else:
            keys[job_id] = value
    return keys


def _store_batches(changed: list[JobBatch]) -> None:
    """Save what OpenAI reported (one statement), then log each batch whose status moved."""
    fields = (
        "status",
        "request_total",
        "request_completed",
        "request_failed",
        "completed_at",
        "openai_created_at",
        "updated_at",
    )
    update_rows(
        JobBatch,
        set_fields=fields,
        where_fields=("id",),
        rows=[[getattr(b, f) for f in fields] + [b.pk] for b in changed],
    )
    events = []
    for batch in changed:
        if getattr(batch, "_status_changed", False):
            counts = f"{batch.request_completed}/{batch.request_total} requests done"
            if batch.request_failed:
                counts += f", {batch.request_failed} failed"
            level = LogLevel.WARNING if batch.status in ("failed", "expired", "cancelled") else LogLevel.INFO
            message = f"Batch {batch.batch_id}: {batch._old_status} → {batch.status} ({counts})."
            events.append((batch.job_id, "batch_status", message, level))
    if events:
        log_events(events)


def _apply_batch_info(batch: JobBatch, info) -> bool:
    old = (batch.status, batch.request_total, batch.request_completed, batch.request_failed)
    new = (info.status, info.request_total, info.request_completed, info.request_failed)
    placed = batch.openai_created_at is None and info.created_at is not None
    if placed:  # where the batch stands in the list, for the sweeps (sweeps.py)
        batch.openai_created_at = info.created_at
    if old == new:
        if placed:
            batch.updated_at = timezone.now()
        return placed
    batch._old_status = batch.status
    batch._status_changed = batch.status != info.status
    batch.status = info.status
    batch.request_total, batch.request_completed, batch.request_failed = new[1:]
    if info.status in TERMINAL_BATCH_STATUSES:
        batch.completed_at = info.finished_at or timezone.now()
    batch.updated_at = timezone.now()
    return True


def _handle_openai_errors(job: PollingJob, errors, *, token: str, now) -> PollResult:
    """Back off on anything transient; fail after repeated bad-key / unknown-batch answers."""
    failures = job.consecutive_failures + 1
    permanent = [(b, e) for b, e in errors if isinstance(e, CredentialsRejected | ResourceNotFound)]
    batch, first = (permanent or errors)[0]
    if isinstance(first, ResourceNotFound):
        reason = f"OpenAI does not know batch {batch.batch_id} (HTTP 404)."
    else:
        reason = first.message
    if permanent and failures >= settings.POLL_FAILURE_LIMIT:
        job_fail(job_id=job.pk, reason=f"{reason} Gave up after {failures} consecutive failed checks.")
        return PollResult("failed", reason)
    retry_after = max((getattr(e, "retry_after", None) or 0 for _, e in errors), default=0) or None
    delay = backoff_seconds(
        base=job.poll_interval_seconds,
        failures=failures,
        cap=settings.POLL_MAX_BACKOFF_SECONDS,
        retry_after=retry_after,
    )
    lease_release(
        job,
        token=token,
        last_check_at=now,
        next_check_at=timezone.now() + timedelta(seconds=delay),  # from the answer, not the claim
        consecutive_failures=failures,
        last_error=reason,
    )
    log_event(
        job_id=job.pk,
        status="openai_error",
        message=f"{reason} Next check in {delay:.0f}s (attempt {failures}).",
        level=LogLevel.WARNING,
    )
    return PollResult("backoff", reason)


def _finish_with_trigger(job: PollingJob, *, token: str, now) -> PollResult:
    outcome: TriggerOutcome = action_run(job_id=job.pk, lease_token=token)
    return PollResult(outcome.state, outcome.detail)
