"""After triggering, follow the Keboola job until it finishes and record how it ended."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db.models import F
from django.utils import timezone

from polling.integrations import keboola as keboola_api
from polling.models import KEBOOLA_FAILED_STATUSES, ActionType, LogLevel, PollingJob
from polling.services.leases import backoff_seconds, lease_claim, lease_free, lease_release
from polling.services.logs import log_event
from polling.services.notifications import notify
from secrets_vault.exceptions import SecretUnreadable
from secrets_vault.services import secret_reveal
from teckochecker.integrations import IntegrationError, Rejected

logger = logging.getLogger(__name__)

MAX_FOLLOW_FAILURES = 20
FOLLOW_BACKOFF_SECONDS = 30  # after the first failed look-up; doubling up to the cap
FOLLOW_MAX_BACKOFF_SECONDS = 600
# The follower holds the job's lease this long; a follower that dies lets another take over.
CLAIM_SECONDS = 120


def _next_delay(job: PollingJob) -> float:
    """Check young jobs often, old ones rarely: 15 s growing to at most 10 minutes."""
    age = (timezone.now() - (job.completed_at or timezone.now())).total_seconds()
    return min(600.0, max(15.0, age / 4))


def keboola_follow_due(*, limit: int = 200) -> int:
    """Follow every Keboola job that is due; returns how many were checked."""
    now = timezone.now()
    ids = list(
        PollingJob.objects.filter(
            lease_free(now), keboola_next_follow_at__lte=now, action_type=ActionType.KEBOOLA
        )
        .order_by("keboola_next_follow_at")
        .values_list("id", flat=True)[:limit]
    )
    return sum(1 for job_id in ids if keboola_follow(job_id=job_id))


def keboola_follow(*, job_id: int) -> bool:
    """Check the job's Keboola job once if it is due and nobody else is; False if not checked."""
    now = timezone.now()
    # The job has finished polling, so its lease is free for the follower: two never check at once.
    lease, claimed = lease_claim(
        PollingJob.objects.filter(pk=job_id, keboola_next_follow_at__lte=now), seconds=CLAIM_SECONDS, now=now
    )
    if not claimed:
        return False
    job = PollingJob.objects.select_related("keboola_secret").get(pk=job_id)
    try:
        token = secret_reveal(secret=job.keboola_secret) if job.keboola_secret else ""
        found = keboola_api.get_job(stack_url=job.keboola_stack_url, token=token, job_id=job.keboola_job_id)
    except (IntegrationError, SecretUnreadable) as exc:
        message = getattr(exc, "message", None) or getattr(exc, "detail", str(exc))
        failures = job.keboola_follow_failures + 1
        give_up = failures >= MAX_FOLLOW_FAILURES or isinstance(exc, Rejected | SecretUnreadable)
        delay = backoff_seconds(
            base=FOLLOW_BACKOFF_SECONDS,
            failures=failures,
            cap=FOLLOW_MAX_BACKOFF_SECONDS,
            retry_after=getattr(exc, "retry_after", None),
        )
        lease_release(
            job,
            token=lease,
            keboola_follow_failures=F("keboola_follow_failures") + 1,
            keboola_next_follow_at=None if give_up else now + timedelta(seconds=delay),
        )
        if give_up:
            log_event(
                job_id=job_id,
                status="keboola_unfollowed",
                message=f"Stopped following Keboola job {job.keboola_job_id}: {message}",
                level=LogLevel.WARNING,
            )
        return True

    changed = found.status != job.keboola_job_status
    fields = {"keboola_job_status": found.status, "keboola_follow_failures": 0}
    if found.is_finished:
        fields.update(
            keboola_job_finished_at=now,
            keboola_job_duration_seconds=found.duration_seconds,
            keboola_next_follow_at=None,
        )
        if found.url:
            fields["keboola_job_url"] = found.url
    else:
        fields["keboola_next_follow_at"] = now + timedelta(seconds=_next_delay(job))
    lease_release(job, token=lease, **fields)
    if found.is_finished:
        failed = found.status in KEBOOLA_FAILED_STATUSES
        duration = f" in {found.duration_seconds:.0f}s" if found.duration_seconds is not None else ""
        log_event(
            job_id=job_id,
            status="keboola_finished",
            message=f"Keboola job {found.id} finished: {found.status}{duration}.",
            level=LogLevel.ERROR if failed else LogLevel.INFO,
        )
        if failed:
            notify(job_id=job_id, event="keboola_failed")
    elif changed:
        log_event(
            job_id=job_id, status="keboola_status", message=f"Keboola job {found.id} is {found.status}."
        )
    return True
