"""Celery tasks: thin wrappers that take ids and call one service."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import DatabaseError, close_old_connections

from polling.services import logs_prune
from polling.services.health import heartbeat_record
from polling.services.leases import backoff_seconds
from polling.services.polls import job_poll, jobs_poll


@shared_task(name="polling.tasks.poll_job", acks_late=True, ignore_result=True)
def poll_job(job_id: int, force: bool = False, asked_at: float | None = None) -> str:
    return job_poll(job_id=job_id, force=force, asked_at=asked_at).outcome


@shared_task(bind=True, name="polling.tasks.poll_jobs", acks_late=True, ignore_result=True, max_retries=30)
def poll_jobs(self, job_ids: list[int], dispatch_token: str) -> int:
    """Check the due jobs the dispatcher sent together; returns how many were checked.

    A database that is restarting fails the message: it is retried in a few seconds (jobs still
    under the dispatch lease are claimed then; jobs already checked are no longer due).
    """
    try:
        results = jobs_poll(job_ids=job_ids, dispatch_token=dispatch_token)
    except DatabaseError:
        close_old_connections()
        if self.request.retries >= self.max_retries:
            raise
        raise self.retry(countdown=2) from None
    return sum(1 for result in results.values() if result.outcome != "skipped")


@shared_task(bind=True, name="polling.tasks.confirm_job", acks_late=True, ignore_result=True, max_retries=30)
def confirm_job(self, job_id: int, attempt: int = 0) -> str:
    """Confirm what webhooks announced for the job (sent to WEBHOOK_QUEUE; see confirm.py)."""
    from polling.services.confirm import job_confirm

    try:
        return job_confirm(job_id=job_id, attempt=attempt).outcome
    except DatabaseError:
        close_old_connections()
        if self.request.retries >= self.max_retries:
            raise
        raise self.retry(countdown=2) from None


@shared_task(name="polling.tasks.worker_heartbeat", ignore_result=True)
def worker_heartbeat() -> None:
    heartbeat_record(kind="worker")


@shared_task(name="polling.tasks.prune_logs", ignore_result=True)
def prune_logs() -> int:
    """Hourly: old job logs, and webhook deliveries kept only for spotting replays."""
    from polling.services.webhooks import webhook_deliveries_prune

    return logs_prune() + webhook_deliveries_prune()


@shared_task(name="polling.tasks.follow_keboola_jobs", ignore_result=True)
def follow_keboola_jobs() -> int:
    from polling.services.follow import keboola_follow_due

    return keboola_follow_due()


@shared_task(
    bind=True,
    name="polling.tasks.deliver_notification",
    ignore_result=True,
    acks_late=True,
    max_retries=5,
)
def deliver_notification(
    self, job_id: int | None, event: str, channel: str, run_id: int | None = None
) -> None:
    """A job's notification, or with `run_id` a script run's (then `job_id` is None)."""
    from polling.models import LogLevel
    from polling.services.logs import log_event
    from polling.services.notifications import notification_deliver

    try:
        notification_deliver(job_id=job_id, event=event, channel=channel, run_id=run_id)
    except Exception as exc:
        reason = getattr(exc, "message", None) or type(exc).__name__
        if self.request.retries >= self.max_retries:
            if run_id is not None:
                logging.getLogger(__name__).warning(
                    "the %s notification (%s) of script run %s failed: %s", channel, event, run_id, reason
                )
                return
            log_event(
                job_id=job_id,
                status="notify_failed",
                message=f"The {channel} notification ({event}) could not be delivered: {reason}",
                level=LogLevel.WARNING,
            )
            return
        delay = backoff_seconds(
            base=10, failures=self.request.retries + 1, cap=600, retry_after=getattr(exc, "retry_after", None)
        )
        raise self.retry(countdown=delay) from None
