"""Keep one django-celery-beat PeriodicTask per polling job, in step with the job.

Beat sends `polling.tasks.poll_job(job_id)` every poll interval while the job is active. The
poll itself decides whether the job is due (backoff can push the next check out), so beat
firing early or twice never causes an extra OpenAI request.
"""

from __future__ import annotations

import json
import logging

from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from polling.models import JobStatus, PollingJob

logger = logging.getLogger(__name__)

POLL_TASK = "polling.tasks.poll_job"
NAME_PREFIX = "teckochecker.poll-job."


def schedule_name(job_id: int) -> str:
    return f"{NAME_PREFIX}{job_id}"


def _interval(seconds: int) -> IntervalSchedule:
    found = (
        IntervalSchedule.objects.filter(every=seconds, period=IntervalSchedule.SECONDS).order_by("id").first()
    )
    return found or IntervalSchedule.objects.create(every=seconds, period=IntervalSchedule.SECONDS)


def schedule_upsert(*, job: PollingJob) -> PeriodicTask:
    """Create or update the job's periodic task: enabled only while the job is active."""
    task, _ = PeriodicTask.objects.update_or_create(
        name=schedule_name(job.pk),
        defaults={
            "task": POLL_TASK,
            "interval": _interval(job.poll_interval_seconds),
            "args": json.dumps([job.pk]),
            "enabled": job.status == JobStatus.ACTIVE,
            "description": f"Poll job #{job.pk}",
        },
    )
    return task


def schedule_remove(*, job_id: int) -> None:
    PeriodicTask.objects.filter(name=schedule_name(job_id)).delete()


def schedules_sync_all() -> dict[str, int]:
    """Rebuild every job's periodic task and drop orphans. Idempotent; run on start and deploy."""
    with transaction.atomic():
        jobs = list(PollingJob.objects.only("id", "status", "poll_interval_seconds"))
        existing = {t.name: t for t in PeriodicTask.objects.filter(name__startswith=NAME_PREFIX)}
        wanted = {schedule_name(job.pk) for job in jobs}
        orphans = [name for name in existing if name not in wanted]
        PeriodicTask.objects.filter(name__in=orphans).delete()
        changed = 0
        for job in jobs:
            task = existing.get(schedule_name(job.pk))
            if (
                task is None
                or task.enabled != (job.status == JobStatus.ACTIVE)
                or task.interval is None
                or task.interval.every != job.poll_interval_seconds
                or task.interval.period != IntervalSchedule.SECONDS
                or task.task != POLL_TASK
                or task.args != json.dumps([job.pk])
            ):
                schedule_upsert(job=job)
                changed += 1
    return {"jobs": len(jobs), "changed": changed, "removed": len(orphans)}


def enqueue_poll(*, job_id: int, force: bool = False) -> None:
    """Ask a worker to check the job right after the current transaction commits."""

    def _send() -> None:
        from polling.tasks import poll_job

        try:
            poll_job.apply_async(args=[job_id], kwargs={"force": force})
        except Exception as exc:  # broker down: beat's next tick still polls the job
            logger.warning("could not enqueue a check of job %s: %s", job_id, exc)

    transaction.on_commit(_send)
