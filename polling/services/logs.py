"""Job log entries: what users read in `job show`, the web page's Logs tab and the admin."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from polling.models import LogLevel, PollingLog

logger = logging.getLogger("teckochecker.jobs")

_PY_LEVEL = {LogLevel.INFO: logging.INFO, LogLevel.WARNING: logging.WARNING, LogLevel.ERROR: logging.ERROR}


def log_event(*, job_id: int, status: str, message: str, level: str = LogLevel.INFO) -> PollingLog:
    """Record one event on a job (and mirror it to the process log). Never pass secrets here."""
    logger.log(_PY_LEVEL.get(level, logging.INFO), "job %s %s: %s", job_id, status, message)
    return PollingLog.objects.create(job_id=job_id, status=status, level=level, message=message[:4000])


def log_events(events: list[tuple[int, str, str, str]]) -> None:
    """Record several (job_id, status, message, level) events with one INSERT."""
    for job_id, status, message, level in events:
        logger.log(_PY_LEVEL.get(level, logging.INFO), "job %s %s: %s", job_id, status, message)
    PollingLog.objects.bulk_create(
        [
            PollingLog(job_id=job_id, status=status, level=level, message=message[:4000])
            for job_id, status, message, level in events
        ]
    )


def logs_prune(*, days: int | None = None) -> int:
    """Delete log entries older than LOG_RETENTION_DAYS; returns how many were deleted."""
    cutoff = timezone.now() - timedelta(days=days or settings.LOG_RETENTION_DAYS)
    deleted, _ = PollingLog.objects.filter(created_at__lt=cutoff).delete()
    return deleted
