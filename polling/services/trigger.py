"""Run a polling job's action (normally: trigger its Keboola job) exactly once.

Keboola has no idempotency key, so we never send a second create request unless we know the
first created nothing:
- The right to send is claimed with a conditional UPDATE (trigger_state "" or "retry" →
  "sending", only while the job is active and this worker holds its lease). A pause that
  lands first wins; a second worker cannot claim.
- 429 or a connection that never reached Keboola → "retry": safe to send again later.
- A timeout after sending, a reset or a 5xx → the outcome is unknown; the state stays
  "sending". After a grace period we search Keboola's jobs for this component and
  configuration with our exact variables: found → adopt it; not found → "retry".
- A worker that dies mid-request leaves "sending" behind; the next check reconciles the same
  way once the lease has expired.
- Any other 4xx, or the attempt budget spent → the job fails with the reason.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from polling.actions import ActionResult, TriggerMetadata, get_action
from polling.models import FAILED_BATCH_STATUSES, ActionType, JobStatus, LogLevel, PollingJob, TriggerState
from polling.services.jobs import job_fail
from polling.services.leases import RELEASED, backoff_seconds, lease_release
from polling.services.logs import log_event
from polling.services.notifications import notify
from secrets_vault.exceptions import SecretUnreadable
from secrets_vault.services import secret_reveal
from teckochecker.integrations import NotSent, OutcomeUnknown, Rejected

logger = logging.getLogger(__name__)

# How long after a Keboola job was created we first look at it again (then with backoff).
FOLLOW_FIRST_CHECK_SECONDS = 10


@dataclass(frozen=True)
class TriggerOutcome:
    state: str  # "triggered", "retry", "unknown", "failed", "skipped"
    detail: str = ""


def reconcile_grace_seconds() -> float:
    """How long after sending before a missing downstream job means "it was never created"."""
    return 2 * settings.KEBOOLA_TIMEOUT_SECONDS + settings.TRIGGER_RECONCILE_MARGIN_SECONDS


def trigger_metadata(job: PollingJob) -> TriggerMetadata:
    batches = list(job.batches.order_by("id"))
    return TriggerMetadata(
        completed=[b.batch_id for b in batches if b.status == "completed"],
        failed=[b.batch_id for b in batches if b.status in FAILED_BATCH_STATUSES],
    )


def _action_secret(job: PollingJob, action) -> str | None:
    """The decrypted secret the action needs; raises SecretUnreadable / returns None if optional."""
    secret = getattr(job, action.secret_field, None) if action.secret_field else None
    if secret is None:
        if job.action_type == ActionType.KEBOOLA:
            raise SecretUnreadable("The job's Keboola secret no longer exists.")
        return None
    return secret_reveal(secret=secret)


def action_run(*, job_id: int, lease_token: str) -> TriggerOutcome:
    """Run the job's action (a Keboola job, a webhook) exactly once, or move it towards that:
    reconcile an unconfirmed attempt, schedule a retry, or fail the job with the reason."""
    now = timezone.now()
    job = PollingJob.objects.select_related("keboola_secret", "action_secret", "action_script").get(pk=job_id)
    try:
        action = get_action(job.action_type)
        secret = _action_secret(job, action)
    except (SecretUnreadable, Rejected) as exc:
        job_fail(job_id=job_id, reason=getattr(exc, "detail", None) or exc.message)
        return TriggerOutcome("failed", "no usable secret or action")
    meta = trigger_metadata(job)

    if job.trigger_state == TriggerState.SENDING:
        outcome = _reconcile(job, action, meta, secret=secret, lease_token=lease_token, now=now)
        if outcome is not None:
            return outcome
        job.refresh_from_db()

    if job.trigger_attempts >= settings.TRIGGER_MAX_ATTEMPTS:
        return _give_up(job, f"The {job.action_type} action failed after {job.trigger_attempts} attempts.")

    claimed = (
        PollingJob.objects.filter(
            pk=job_id,
            status=JobStatus.ACTIVE,
            lease_token=lease_token,
            trigger_state__in=[TriggerState.NONE, TriggerState.RETRY],
        ).update(
            trigger_state=TriggerState.SENDING,
            trigger_attempts=F("trigger_attempts") + 1,
            trigger_started_at=now,
            last_check_at=now,
        )
        == 1
    )
    if not claimed:
        return TriggerOutcome("skipped", "trigger not claimable (paused, finished or lease lost)")
    attempt = job.trigger_attempts + 1
    what = (
        "triggering Keboola"
        if job.action_type == ActionType.KEBOOLA
        else f"running the {job.action_type} action"
    )
    log_event(
        job_id=job_id, status="triggering", message=f"All batches finished; {what} (attempt {attempt})."
    )

    try:
        result = action.send(job, meta, secret=secret)
    except Rejected as exc:
        return _give_up(job, exc.message)
    except NotSent as exc:
        return _schedule_retry(job, lease_token, attempt, exc.message, exc.retry_after, now)
    except Exception as exc:  # OutcomeUnknown and anything unexpected: never resend blindly
        message = exc.message if isinstance(exc, OutcomeUnknown) else "unexpected error"
        if not isinstance(exc, OutcomeUnknown):
            logger.exception("unexpected error while triggering job %s", job_id)
        wait = reconcile_grace_seconds()
        log = f"The outcome is unknown ({message}); will look it up in {wait:.0f}s before any retry."
        outcome = TriggerOutcome("unknown", message)
        return _check_later(
            job, lease_token, outcome, at=now + timedelta(seconds=wait), log=log, last_error=message
        )
    return _complete(job, result, meta, how="created")


def actions_run(*, job_ids: list[int], lease_token: str) -> dict[int, TriggerOutcome]:
    """`action_run` for several jobs held under `lease_token`, side by side: the first in this
    thread, the others on the process's actions pool (ACTIONS_CONCURRENCY threads). A webhook
    confirmation of several jobs that all finished would otherwise make the last wait for every
    action before it; handed to tasks of their own, they waited behind the queue. A job whose
    action could not be claimed (paused meanwhile) is given back. Every action has ended when
    this returns; the first unexpected error is raised after that."""
    if not job_ids:
        return {}
    futures = {pk: _actions_pool().submit(_action_pooled, pk, lease_token) for pk in job_ids[1:]}
    outcomes: dict[int, TriggerOutcome | Exception] = {}
    try:
        outcomes[job_ids[0]] = _action_run_or_release(job_ids[0], lease_token)
    except Exception as exc:
        outcomes[job_ids[0]] = exc
    for pk, future in futures.items():
        try:
            outcomes[pk] = future.result()
        except Exception as exc:
            outcomes[pk] = exc
    for outcome in outcomes.values():
        if isinstance(outcome, Exception):
            raise outcome
    return outcomes


def _action_run_or_release(job_id: int, lease_token: str) -> TriggerOutcome:
    outcome = action_run(job_id=job_id, lease_token=lease_token)
    if outcome.state == "skipped":  # paused meanwhile: give the job back as it is
        lease_release(PollingJob.objects.filter(pk=job_id), token=lease_token)
    return outcome


def _action_pooled(job_id: int, lease_token: str) -> TriggerOutcome:
    # A pool thread's database connections are its own, and no task start or end looks after
    # them: the same care as around a task (too old or broken ones closed before and after).
    close_old_connections()
    try:
        return _action_run_or_release(job_id, lease_token)
    finally:
        close_old_connections()


# Actions in flight per process besides the calling threads' own. Each pool thread keeps a
# database connection (README, "Database connections"). A webhook confirmation takes up to ten
# jobs at once, all of which may have just finished.
ACTIONS_CONCURRENCY = 8
_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _actions_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=ACTIONS_CONCURRENCY, thread_name_prefix="actions")
        return _pool


def _reconcile(job, action, meta, *, secret, lease_token: str, now) -> TriggerOutcome | None:
    """Decide an earlier attempt with an unknown outcome. None means: safe to send again."""
    started = job.trigger_started_at or now
    ready_at = started + timedelta(seconds=reconcile_grace_seconds())
    if now < ready_at:
        lease_release(job, token=lease_token, next_check_at=ready_at, updated_at=timezone.now())
        return TriggerOutcome("unknown", "waiting before looking the job up")
    try:
        found = action.find(job, meta, secret=secret, since=started)
    except Rejected as exc:
        return _give_up(job, exc.message)
    except NotSent as exc:
        failures = job.consecutive_failures + 1
        if failures >= settings.TRIGGER_MAX_ATTEMPTS:
            return _give_up(
                job,
                f"Could not confirm whether the downstream job was created ({exc.message}); "
                "check it before running it by hand.",
            )
        delay = backoff_seconds(
            base=job.poll_interval_seconds, failures=failures, cap=settings.POLL_MAX_BACKOFF_SECONDS
        )
        log = f"Could not look up the downstream job ({exc.message}); retrying in {delay:.0f}s."
        outcome = TriggerOutcome("unknown", exc.message)
        return _check_later(
            job,
            lease_token,
            outcome,
            at=now + timedelta(seconds=delay),
            log=log,
            consecutive_failures=failures,
        )
    if found is not None:
        return _complete(job, found, meta, how="found after an unconfirmed request")
    moved = PollingJob.objects.filter(
        pk=job.pk, lease_token=lease_token, trigger_state=TriggerState.SENDING
    ).update(trigger_state=TriggerState.RETRY)
    if not moved:
        return TriggerOutcome("skipped", "lease lost")
    log_event(
        job_id=job.pk,
        status="trigger_retry",
        message="The unconfirmed request created nothing downstream; sending it again.",
        level=LogLevel.WARNING,
    )
    return None


def _schedule_retry(job, lease_token, attempt, message, retry_after, now) -> TriggerOutcome:
    if attempt >= settings.TRIGGER_MAX_ATTEMPTS:
        PollingJob.objects.filter(pk=job.pk, lease_token=lease_token).update(trigger_state=TriggerState.RETRY)
        return _give_up(job, f"The {job.action_type} action failed after {attempt} attempts: {message}")
    delay = backoff_seconds(
        base=job.poll_interval_seconds,
        failures=attempt,
        cap=settings.POLL_MAX_BACKOFF_SECONDS,
        retry_after=retry_after,
    )
    PollingJob.objects.filter(pk=job.pk, lease_token=lease_token, trigger_state=TriggerState.SENDING).update(
        trigger_state=TriggerState.RETRY
    )
    log = f"Not accepted downstream ({message}); retrying in {delay:.0f}s."
    outcome = TriggerOutcome("retry", message)
    return _check_later(
        job, lease_token, outcome, at=now + timedelta(seconds=delay), log=log, last_error=message
    )


def _check_later(job, lease_token: str, outcome: TriggerOutcome, *, at, log: str, **fields) -> TriggerOutcome:
    """Give the job back, due again `at` (with `fields`), and log why (as "trigger_<outcome>")."""
    lease_release(job, token=lease_token, next_check_at=at, updated_at=timezone.now(), **fields)
    log_event(job_id=job.pk, status=f"trigger_{outcome.state}", message=log, level=LogLevel.WARNING)
    return outcome


def _give_up(job: PollingJob, reason: str) -> TriggerOutcome:
    PollingJob.objects.filter(pk=job.pk).exclude(trigger_state=TriggerState.DONE).update(
        trigger_state=TriggerState.FAILED
    )
    job_fail(job_id=job.pk, reason=reason)
    return TriggerOutcome("failed", reason)


def _complete(job: PollingJob, result: ActionResult, meta: TriggerMetadata, *, how: str) -> TriggerOutcome:
    now = timezone.now()
    # `meta` was read from the batches before sending; a terminal batch never changes again.
    status = JobStatus.COMPLETED_WITH_FAILURES if meta.failed else JobStatus.COMPLETED
    is_keboola = job.action_type == ActionType.KEBOOLA
    with transaction.atomic():
        # Conditional on "sending" only: even if our lease expired meanwhile, the downstream
        # job exists and must be recorded, exactly once.
        updated = PollingJob.objects.filter(pk=job.pk, trigger_state=TriggerState.SENDING).update(
            trigger_state=TriggerState.DONE,
            status=status,
            keboola_job_id=result.reference if is_keboola else "",
            keboola_job_url=result.url if is_keboola else "",
            keboola_job_status=result.status if is_keboola else "",
            keboola_next_follow_at=now + timedelta(seconds=FOLLOW_FIRST_CHECK_SECONDS)
            if is_keboola
            else None,
            completed_at=now,
            last_check_at=now,
            next_check_at=None,
            **RELEASED,
            consecutive_failures=0,
            last_error="",
            updated_at=now,
        )
        if not updated:
            return TriggerOutcome("skipped", "already recorded")
        done = (
            f"Keboola job {result.reference} {how}"
            if is_keboola
            else result.extra.get("done") or f"Webhook delivered ({result.reference})"
        )
        log_event(job_id=job.pk, status="triggered", message=f"{done}; job {status.replace('_', ' ')}.")
        notify(job_id=job.pk, event="finished", job=job)
    return TriggerOutcome("triggered", result.reference)
