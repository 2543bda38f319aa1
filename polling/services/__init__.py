"""Polling services: the one implementation behind the API, the admin, commands and tasks."""

from polling.services.exceptions import JobNotFound, JobStateConflict
from polling.services.jobs import (
    job_check_now,
    job_create,
    job_delete,
    job_fail,
    job_get,
    job_pause,
    job_resume,
    job_update,
)
from polling.services.logs import log_event, logs_prune
from polling.services.schedules import schedules_sync_all

__all__ = [
    "JobNotFound",
    "JobStateConflict",
    "job_check_now",
    "job_create",
    "job_delete",
    "job_fail",
    "job_get",
    "job_pause",
    "job_resume",
    "job_update",
    "log_event",
    "logs_prune",
    "schedules_sync_all",
]
