"""Reads of jobs, logs and statistics for the API, the admin and the commands."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet

from polling.models import JobBatch, JobStatus, PollingJob, PollingLog
from secrets_vault.models import Secret
from teckochecker.errors import is_valid_id


def _filtered(*, status: str | None, search: str | None) -> QuerySet[PollingJob]:
    """Jobs in `status` whose name or a batch id contains `search` (both optional)."""
    qs = PollingJob.objects.all()
    if status:
        qs = qs.filter(status=status)
    if search:
        term = search.strip()
        qs = qs.filter(Q(name__icontains=term) | Q(batches__batch_id__icontains=term)).distinct()
    return qs


# The job columns a job's wire shape needs (serializers.job_representation); secrets come by name.
JOB_ROW_FIELDS = (
    "id",
    "name",
    "status",
    "openai_secret_id",
    "keboola_secret_id",
    "keboola_stack_url",
    "keboola_component_id",
    "keboola_configuration_id",
    "poll_interval_seconds",
    "last_check_at",
    "next_check_at",
    "created_at",
    "updated_at",
    "completed_at",
    "keboola_job_id",
    "keboola_job_url",
    "keboola_job_status",
    "keboola_job_finished_at",
    "keboola_job_duration_seconds",
    "action_type",
    "action_url",
    "action_secret_id",
    "action_script_id",
    "notify_emails",
    "notify_webhook_url",
    "trigger_state",
    "last_error",
)
BATCH_ROW_FIELDS = (
    "id",
    "job_id",
    "batch_id",
    "status",
    "created_at",
    "completed_at",
    "request_total",
    "request_completed",
    "request_failed",
)


def job_rows(
    *, status: str | None = None, search: str | None = None, limit: int | None = None, offset: int = 0
) -> tuple[list[dict], int]:
    """Jobs newest first, filtered; returns (page, total matching).

    The one read of jobs for the API and the CLI. Plain rows, no model instances: four queries
    whatever the page size (count, page, batches, secret names). Each row has JOB_ROW_FIELDS,
    `batches` (rows of BATCH_ROW_FIELDS, oldest first) and `openai_secret_name` /
    `keboola_secret_name`.
    """
    qs = _filtered(status=status, search=search)
    total = qs.count()
    page = qs.order_by("-created_at", "-id").values(*JOB_ROW_FIELDS)
    rows = list(page[offset : offset + limit] if limit is not None else page[offset:])
    return _with_batches_and_names(rows), total


def job_row(*, job_id: int) -> dict:
    """One job as a row (see `job_rows`); raises JobNotFound."""
    from polling.services import JobNotFound

    rows = list(PollingJob.objects.filter(pk=job_id).values(*JOB_ROW_FIELDS)) if is_valid_id(job_id) else []
    if not rows:
        raise JobNotFound(f"Job {job_id} not found.")
    return _with_batches_and_names(rows)[0]


def job_rows_by_id(*, job_ids) -> list[dict]:
    """The jobs with these ids that still exist, as rows (see `job_rows`); for the live events."""
    return _with_batches_and_names(list(PollingJob.objects.filter(pk__in=job_ids).values(*JOB_ROW_FIELDS)))


def _with_batches_and_names(rows: list[dict]) -> list[dict]:
    if not rows:
        return rows
    by_id = {row["id"]: row for row in rows}
    for row in rows:
        row["batches"] = []
    for batch in JobBatch.objects.filter(job_id__in=by_id).order_by("id").values(*BATCH_ROW_FIELDS):
        by_id[batch["job_id"]]["batches"].append(batch)
    secret_ids = {row[k] for row in rows for k in ("openai_secret_id", "keboola_secret_id") if row[k]}
    names = dict(Secret.objects.filter(pk__in=secret_ids).values_list("pk", "name")) if secret_ids else {}
    for row in rows:
        row["openai_secret_name"] = names.get(row["openai_secret_id"])
        row["keboola_secret_name"] = names.get(row["keboola_secret_id"])
    return rows


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
