"""Creating, changing, pausing, resuming and deleting polling jobs (not the polling itself)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from polling import validation as v
from polling.models import ActionType, JobBatch, JobStatus, LogLevel, PollingJob, TriggerState
from polling.services.exceptions import JobNotFound, JobStateConflict
from polling.services.leases import RELEASED
from polling.services.logs import log_event
from polling.services.notifications import notify
from polling.services.schedules import enqueue_poll
from secrets_vault.models import Secret, SecretType
from teckochecker.errors import NotFound, ValidationFailed, get_by_id, is_valid_id

UPDATABLE_FIELDS = (
    "name",
    "keboola_stack_url",
    "keboola_component_id",
    "keboola_configuration_id",
    "poll_interval_seconds",
    "action_url",
    "notify_emails",
    "notify_webhook_url",
)


def job_get(*, job_id: int, for_update: bool = False) -> PollingJob:
    return get_by_id(
        PollingJob.objects.all(), job_id, not_found=JobNotFound, label="Job", for_update=for_update
    )


_SECRET_LABELS = {
    SecretType.OPENAI: "OpenAI",
    SecretType.KEBOOLA: "Keboola",
    SecretType.HTTP_HEADER: "Webhook",
}


def _resolve_secret(*, field: str, secret_id: object, expected: str) -> Secret:
    label = _SECRET_LABELS.get(expected, expected)
    if isinstance(secret_id, bool) or not isinstance(secret_id, int):
        raise ValidationFailed.from_errors({field: [f"{label} secret id must be an integer."]})
    secret = Secret.objects.defer("value").filter(pk=secret_id).first() if is_valid_id(secret_id) else None
    if secret is None:
        raise NotFound(
            f"{label} secret {secret_id} not found.", errors={field: [f"Secret {secret_id} not found."]}
        )
    if secret.type != expected:
        message = f"Secret '{secret.name}' is of type '{secret.type}', expected '{expected}'."
        raise NotFound(message, errors={field: [message]})
    return secret


def _resolve_script(script_id: object):
    """The script the script action runs (by id); a clear 400/404 otherwise."""
    from scripts.models import Script

    field = "action_script_id"
    if script_id is None:
        raise ValidationFailed.from_errors({field: ["The script action needs a script (action_script_id)."]})
    if isinstance(script_id, bool) or not isinstance(script_id, int):
        raise ValidationFailed.from_errors({field: ["Script id must be an integer."]})
    script = Script.objects.filter(pk=script_id).first() if is_valid_id(script_id) else None
    if script is None:
        raise NotFound(f"Script {script_id} not found.", errors={field: [f"Script {script_id} not found."]})
    return script


def _clean_fields(data: dict[str, Any]) -> dict[str, Any]:
    checks = {
        "name": lambda: v.clean_name(data["name"]),
        "keboola_stack_url": lambda: v.clean_stack_url(data["keboola_stack_url"]),
        "keboola_component_id": lambda: v.clean_keboola_id(
            "keboola_component_id", data["keboola_component_id"], "Component ID"
        ),
        "keboola_configuration_id": lambda: v.clean_keboola_id(
            "keboola_configuration_id", data["keboola_configuration_id"], "Configuration ID"
        ),
        "poll_interval_seconds": lambda: v.clean_poll_interval(data["poll_interval_seconds"]),
        "batch_ids": lambda: v.clean_batch_ids(data["batch_ids"]),
        "action_url": lambda: v.clean_http_url("action_url", data["action_url"], "Webhook URL"),
        "notify_emails": lambda: v.clean_emails(data["notify_emails"]),
        "notify_webhook_url": lambda: (
            v.clean_http_url("notify_webhook_url", data["notify_webhook_url"], "Notification webhook URL")
            if data["notify_webhook_url"]
            else ""
        ),
    }
    return v.collect([(field, check) for field, check in checks.items() if field in data])


def job_create(
    *,
    name: str,
    batch_ids: list[str] | None = None,
    openai_secret_id: int,
    keboola_secret_id: int | None = None,
    keboola_stack_url: str = "",
    keboola_component_id: str = "",
    keboola_configuration_id: str = "",
    poll_interval_seconds: int | None = None,
    action_type: str = ActionType.KEBOOLA,
    action_url: str = "",
    action_secret_id: int | None = None,
    action_script_id: int | None = None,
    notify_emails: str | list[str] = "",
    notify_webhook_url: str = "",
) -> PollingJob:
    """Validate everything first; write nothing unless all of it is valid. Checks at once."""
    if action_type not in ActionType.values:
        raise ValidationFailed.from_errors(
            {"action_type": [f"Action type must be one of: {', '.join(ActionType.values)}."]}
        )
    if poll_interval_seconds is None:
        poll_interval_seconds = settings.DEFAULT_POLL_INTERVAL
    fields = {
        "name": name,
        "batch_ids": batch_ids,
        "poll_interval_seconds": poll_interval_seconds,
        "notify_emails": notify_emails,
        "notify_webhook_url": notify_webhook_url,
    }
    if action_type == ActionType.KEBOOLA:
        fields.update(
            keboola_stack_url=keboola_stack_url,
            keboola_component_id=keboola_component_id,
            keboola_configuration_id=keboola_configuration_id,
        )
    elif action_type == ActionType.WEBHOOK:
        fields["action_url"] = action_url
    cleaned = _clean_fields(fields)
    openai_secret = _resolve_secret(
        field="openai_secret_id", secret_id=openai_secret_id, expected=SecretType.OPENAI
    )
    keboola_secret = action_secret = None
    if action_type == ActionType.KEBOOLA:
        keboola_secret = _resolve_secret(
            field="keboola_secret_id", secret_id=keboola_secret_id, expected=SecretType.KEBOOLA
        )
    elif action_secret_id is not None and action_type == ActionType.WEBHOOK:
        action_secret = _resolve_secret(
            field="action_secret_id", secret_id=action_secret_id, expected=SecretType.HTTP_HEADER
        )
    action_script = _resolve_script(action_script_id) if action_type == ActionType.SCRIPT else None
    ids = cleaned.pop("batch_ids")
    now = timezone.now()
    with transaction.atomic():
        job = PollingJob.objects.create(
            **cleaned,
            action_type=action_type,
            openai_secret=openai_secret,
            keboola_secret=keboola_secret,
            action_secret=action_secret,
            action_script=action_script,
            status=JobStatus.ACTIVE,
            created_at=now,
            next_check_at=now,
        )
        JobBatch.objects.bulk_create([JobBatch(job=job, batch_id=b, created_at=now) for b in ids])
        log_event(job_id=job.pk, status="created", message=f"Job created watching {len(ids)} batch(es).")
        enqueue_poll(job_id=job.pk, force=True)
    return job


def job_update(*, job: PollingJob, **changes: Any) -> PollingJob:
    """Change any of UPDATABLE_FIELDS. An explicit None is a validation error."""
    unknown = set(changes) - set(UPDATABLE_FIELDS)
    if unknown:
        raise ValidationFailed.from_errors({f: ["This field cannot be changed."] for f in sorted(unknown)})
    nulls = {f: ["This field may not be null."] for f, value in changes.items() if value is None}
    if nulls:
        raise ValidationFailed.from_errors(nulls)
    cleaned = _clean_fields(changes)
    if not cleaned:
        return job
    with transaction.atomic():
        locked = job_get(job_id=job.pk, for_update=True)
        before = {f: getattr(locked, f) for f in cleaned}
        for field, value in cleaned.items():
            setattr(locked, field, value)
        fields = [*cleaned, "updated_at"]
        if "poll_interval_seconds" in cleaned and locked.last_check_at and not locked.consecutive_failures:
            # The next check follows the new interval from the last one (backoff keeps its delay).
            locked.next_check_at = locked.last_check_at + timedelta(seconds=locked.poll_interval_seconds)
            fields.append("next_check_at")
        locked.save(update_fields=fields)
        changed = [f"{f}: {before[f]!s} → {cleaned[f]!s}" for f in cleaned if before[f] != cleaned[f]]
        if changed:
            log_event(job_id=locked.pk, status="updated", message="Updated " + "; ".join(changed))
    return locked


def job_pause(*, job: PollingJob) -> PollingJob:
    with transaction.atomic():
        updated = (
            PollingJob.objects.filter(pk=job.pk, status=JobStatus.ACTIVE)
            .exclude(trigger_state=TriggerState.SENDING)
            .update(status=JobStatus.PAUSED, updated_at=timezone.now())
        )
        current = job_get(job_id=job.pk)
        if not updated:
            if current.status == JobStatus.ACTIVE:
                raise JobStateConflict(f"Job {job.pk} is triggering Keboola right now and cannot be paused.")
            raise JobStateConflict(f"Job {job.pk} is {current.status}; only an active job can be paused.")
        log_event(job_id=job.pk, status="paused", message="Job paused.")
    return current


def job_resume(*, job: PollingJob) -> PollingJob:
    with transaction.atomic():
        now = timezone.now()
        updated = PollingJob.objects.filter(pk=job.pk, status=JobStatus.PAUSED).update(
            status=JobStatus.ACTIVE, next_check_at=now, consecutive_failures=0, updated_at=now
        )
        current = job_get(job_id=job.pk)
        if not updated:
            raise JobStateConflict(f"Job {job.pk} is {current.status}; only a paused job can be resumed.")
        log_event(job_id=job.pk, status="resumed", message="Job resumed; checking now.")
        enqueue_poll(job_id=job.pk, force=True)
    return current


def job_check_now(*, job: PollingJob) -> None:
    """Queue an immediate check of an active job (admin action, webhooks)."""
    if job.status != JobStatus.ACTIVE:
        raise JobStateConflict(f"Job {job.pk} is {job.status}; only an active job can be checked.")
    with transaction.atomic():
        enqueue_poll(job_id=job.pk, force=True)


def job_delete(*, job: PollingJob) -> None:
    """Delete the job with its batches and logs (the dispatcher simply no longer sees it)."""
    with transaction.atomic():
        job.delete()


def job_fail(*, job_id: int, reason: str) -> bool:
    """Mark an active or paused job failed with `reason`; False if it had already finished."""
    now = timezone.now()
    with transaction.atomic():
        updated = PollingJob.objects.filter(
            pk=job_id, status__in=[JobStatus.ACTIVE, JobStatus.PAUSED]
        ).update(
            status=JobStatus.FAILED,
            last_error=reason,
            completed_at=now,
            next_check_at=None,
            **RELEASED,
            updated_at=now,
        )
        if updated:
            log_event(job_id=job_id, status="failed", message=reason, level=LogLevel.ERROR)
            notify(job_id=job_id, event="failed")
    return bool(updated)
