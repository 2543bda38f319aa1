"""Trigger the Keboola job of a polling job exactly once.

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
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from polling.integrations import keboola as keboola_api
from polling.models import FAILED_BATCH_STATUSES, JobStatus, LogLevel, PollingJob, TriggerState
from polling.services.jobs import job_fail
from polling.services.logs import log_event
from polling.services.schedules import schedule_upsert
from secrets_vault.exceptions import SecretUnreadable
from secrets_vault.services import secret_reveal

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TriggerOutcome:
    state: str  # "triggered", "retry", "unknown", "failed", "skipped"
    detail: str = ""


def reconcile_grace_seconds() -> float:
    """How long after sending before a missing Keboola job means "it was never created"."""
    return 2 * settings.KEBOOLA_TIMEOUT_SECONDS + 30


def trigger_payload(job: PollingJob) -> dict:
    batches = list(job.batches.order_by("id"))
    completed = [b.batch_id for b in batches if b.status == "completed"]
    failed = [b.batch_id for b in batches if b.status in FAILED_BATCH_STATUSES]
    return keboola_api.build_trigger_payload(
        component_id=job.keboola_component_id,
        configuration_id=job.keboola_configuration_id,
        completed_batch_ids=completed,
        failed_batch_ids=failed,
    )


def _release(job_id: int, token: str, **fields) -> bool:
    return (
        PollingJob.objects.filter(pk=job_id, lease_token=token).update(
            lease_token="", lease_expires_at=None, updated_at=timezone.now(), **fields
        )
        == 1
    )


def trigger_keboola(*, job_id: int, lease_token: str) -> TriggerOutcome:
    now = timezone.now()
    job = PollingJob.objects.select_related("keboola_secret").get(pk=job_id)
    if job.keboola_secret is None:
        job_fail(job_id=job_id, reason="The job's Keboola secret no longer exists.")
        return TriggerOutcome("failed", "no secret")
    try:
        token = secret_reveal(secret=job.keboola_secret)
    except SecretUnreadable as exc:
        job_fail(job_id=job_id, reason=exc.detail)
        return TriggerOutcome("failed", "unreadable secret")
    payload = trigger_payload(job)

    if job.trigger_state == TriggerState.SENDING:
        outcome = _reconcile(job, token=token, payload=payload, lease_token=lease_token, now=now)
        if outcome is not None:
            return outcome
        job.refresh_from_db()

    if job.trigger_attempts >= settings.TRIGGER_MAX_ATTEMPTS:
        return _give_up(job, f"Keboola job could not be created after {job.trigger_attempts} attempts.")

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
    log_event(job_id=job_id, status="triggering", message=f"All batches finished; triggering Keboola (attempt {attempt}).")

    try:
        created = keboola_api.create_job(stack_url=job.keboola_stack_url, token=token, payload=payload)
    except keboola_api.KeboolaRejected as exc:
        return _give_up(job, f"Keboola rejected the job: {exc.message}")
    except keboola_api.KeboolaNotSent as exc:
        return _schedule_retry(job, lease_token, attempt, exc.message, getattr(exc, "retry_after", None), now)
    except Exception as exc:  # KeboolaOutcomeUnknown and anything unexpected: never resend blindly
        message = exc.message if isinstance(exc, keboola_api.KeboolaError) else "unexpected error"
        if not isinstance(exc, keboola_api.KeboolaError):
            logger.exception("unexpected error while triggering job %s", job_id)
        wait = reconcile_grace_seconds()
        _release(job_id, lease_token, next_check_at=now + timedelta(seconds=wait), last_error=message)
        log_event(
            job_id=job_id,
            status="trigger_unknown",
            message=f"Keboola did not confirm the job ({message}); will look it up in {wait:.0f}s before any retry.",
            level=LogLevel.WARNING,
        )
        return TriggerOutcome("unknown", message)
    return _complete(job, created, lease_token=lease_token, how="created")


def _reconcile(job: PollingJob, *, token: str, payload: dict, lease_token: str, now) -> TriggerOutcome | None:
    """Decide an earlier attempt with an unknown outcome. None means: safe to send again."""
    started = job.trigger_started_at or now
    ready_at = started + timedelta(seconds=reconcile_grace_seconds())
    if now < ready_at:
        _release(job.pk, lease_token, next_check_at=ready_at)
        return TriggerOutcome("unknown", "waiting before looking the job up")
    try:
        found = keboola_api.search_jobs(
            stack_url=job.keboola_stack_url,
            token=token,
            component_id=job.keboola_component_id,
            configuration_id=job.keboola_configuration_id,
            created_after=started - timedelta(minutes=5),
        )
    except keboola_api.KeboolaRejected as exc:
        return _give_up(job, f"Keboola refused the job search: {exc.message}")
    except keboola_api.KeboolaError as exc:
        failures = job.consecutive_failures + 1
        if failures >= settings.TRIGGER_MAX_ATTEMPTS:
            return _give_up(
                job,
                "Could not confirm whether the Keboola job was created "
                f"({exc.message}); check Keboola before running it by hand.",
            )
        from polling.services.polls import backoff_seconds

        delay = backoff_seconds(interval=job.poll_interval_seconds, failures=failures)
        _release(job.pk, lease_token, consecutive_failures=failures, next_check_at=now + timedelta(seconds=delay))
        log_event(
            job_id=job.pk,
            status="trigger_unknown",
            message=f"Could not look up the Keboola job ({exc.message}); retrying in {delay:.0f}s.",
            level=LogLevel.WARNING,
        )
        return TriggerOutcome("unknown", exc.message)

    wanted = payload["variableValuesData"]["values"]
    matches = [j for j in found if j.variable_values == wanted]
    if matches:
        adopted = sorted(matches, key=lambda j: (j.created_time is None, j.created_time))[0]
        return _complete(job, adopted, lease_token=lease_token, how="found after an unconfirmed request")
    # Nothing was created: the earlier attempt is safe to repeat.
    moved = PollingJob.objects.filter(
        pk=job.pk, lease_token=lease_token, trigger_state=TriggerState.SENDING
    ).update(trigger_state=TriggerState.RETRY)
    if not moved:
        return TriggerOutcome("skipped", "lease lost")
    log_event(
        job_id=job.pk,
        status="trigger_retry",
        message="The unconfirmed Keboola request created no job; sending it again.",
        level=LogLevel.WARNING,
    )
    return None


def _schedule_retry(job, lease_token, attempt, message, retry_after, now) -> TriggerOutcome:
    if attempt >= settings.TRIGGER_MAX_ATTEMPTS:
        PollingJob.objects.filter(pk=job.pk, lease_token=lease_token).update(trigger_state=TriggerState.RETRY)
        return _give_up(job, f"Keboola job could not be created after {attempt} attempts: {message}")
    from polling.services.polls import backoff_seconds

    delay = backoff_seconds(interval=job.poll_interval_seconds, failures=attempt, retry_after=retry_after)
    PollingJob.objects.filter(pk=job.pk, lease_token=lease_token, trigger_state=TriggerState.SENDING).update(
        trigger_state=TriggerState.RETRY
    )
    _release(job.pk, lease_token, next_check_at=now + timedelta(seconds=delay), last_error=message)
    log_event(
        job_id=job.pk,
        status="trigger_retry",
        message=f"Keboola did not accept the job ({message}); retrying in {delay:.0f}s.",
        level=LogLevel.WARNING,
    )
    return TriggerOutcome("retry", message)


def _give_up(job: PollingJob, reason: str) -> TriggerOutcome:
    PollingJob.objects.filter(pk=job.pk).exclude(trigger_state=TriggerState.DONE).update(
        trigger_state=TriggerState.FAILED
    )
    job_fail(job_id=job.pk, reason=reason)
    return TriggerOutcome("failed", reason)


def _complete(job: PollingJob, created, *, lease_token: str, how: str) -> TriggerOutcome:
    now = timezone.now()
    failed = job.batches.filter(status__in=FAILED_BATCH_STATUSES).exists()
    status = JobStatus.COMPLETED_WITH_FAILURES if failed else JobStatus.COMPLETED
    with transaction.atomic():
        # Conditional on "sending" only: even if our lease expired meanwhile, the Keboola
        # job exists and must be recorded, exactly once.
        updated = PollingJob.objects.filter(pk=job.pk, trigger_state=TriggerState.SENDING).update(
            trigger_state=TriggerState.DONE,
            status=status,
            keboola_job_id=str(created.id),
            keboola_job_url=created.url or "",
            completed_at=now,
            last_check_at=now,
            next_check_at=None,
            lease_token="",
            lease_expires_at=None,
            consecutive_failures=0,
            last_error="",
            updated_at=now,
        )
        if not updated:
            return TriggerOutcome("skipped", "already recorded")
        schedule_upsert(job=PollingJob.objects.get(pk=job.pk))
        log_event(
            job_id=job.pk,
            status="triggered",
            message=f"Keboola job {created.id} {how}; job {status.replace('_', ' ')}.",
        )
    return TriggerOutcome("triggered", str(created.id))
