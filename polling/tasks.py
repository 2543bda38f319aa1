"""Celery tasks: thin wrappers that take ids and call one service."""

from __future__ import annotations

from celery import shared_task

from polling.services import logs_prune
from polling.services.health import heartbeat_record
from polling.services.polls import job_poll


@shared_task(name="polling.tasks.poll_job", acks_late=True, ignore_result=True)
def poll_job(job_id: int, force: bool = False) -> str:
    return job_poll(job_id=job_id, force=force).outcome


@shared_task(name="polling.tasks.worker_heartbeat", ignore_result=True)
def worker_heartbeat() -> None:
    heartbeat_record(kind="worker")


@shared_task(name="polling.tasks.prune_logs", ignore_result=True)
def prune_logs() -> int:
    return logs_prune()
