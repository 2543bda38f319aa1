"""Reads of jobs, logs and statistics for the API, the admin and the commands."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

from polling.models import JobBatch, JobStatus, PollingJob, PollingLog
from secrets_vault.models import Secret


def _with_relations(qs: QuerySet[PollingJob]) -> QuerySet[PollingJob]:
    return (
        qs.select_related("openai_secret", "keboola_secret")
        .defer("openai_secret__value", "keboola_secret__value")
        .prefetch_related(Prefetch("batches", queryset=JobBatch.objects.order_by("id")))
    )


def job_list(
    *, status: str | None = None, search: str | None = None, limit: int | None = None, offset: int = 0
) -> tuple[list[PollingJob], int]:
    """Jobs newest first, filtered; returns (page, total matching)."""
    qs = PollingJob.objects.all()
    if status:
        qs = qs.filter(status=status)
    if search:
        term = search.strip()
        qs = qs.filter(Q(name__icontains=term) | Q(batches__batch_id__icontains=term)).distinct()
    total = qs.count()
    page = qs.order_by("-created_at", "-id")
    page = page[offset : offset + limit] if limit is not None else page[offset:]
    return list(_with_relations(page)), total


def job_detail(*, job_id: int) -> PollingJob:
    from polling.services import job_get

    job = job_get(job_id=job_id)
    return _with_relations(PollingJob.objects.filter(pk=job.pk)).get()


def job_logs(*, job_id: int, limit: int = 50, offset: int = 0) -> tuple[list[PollingLog], int]:
    qs = PollingLog.objects.filter(job_id=job_id)
    return list(qs.order_by("-created_at", "-id")[offset : offset + limit]), qs.count()


def log_list(*, level: str | None = None, job_id: int | None = None, limit: int = 100, offset: int = 0):
    qs = PollingLog.objects.all()
    if level:
        qs = qs.filter(level=level)
    if job_id is not None:
        qs = qs.filter(job_id=job_id)
    page = qs.select_related("job").only(
        "id", "job_id", "job__name", "status", "level", "message", "created_at"
    )
    return list(page.order_by("-created_at", "-id")[offset : offset + limit]), qs.count()


def job_stats() -> dict[str, int]:
    counts = PollingJob.objects.aggregate(
        total_jobs=Count("id"),
        **{f"{s.value}_jobs": Count("id", filter=Q(status=s.value)) for s in JobStatus},
    )
    counts["total_secrets"] = Secret.objects.count()
    counts["total_logs"] = PollingLog.objects.count()
    return counts
