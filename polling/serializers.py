"""Shapes of jobs, batches and logs on the wire (API.md, "Polling jobs")."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from polling.models import FAILED_BATCH_STATUSES, JobStatus

_DATETIME = serializers.DateTimeField()  # unbound: formats like every DateTimeField here


def _iso(value, tz=None):
    """What DateTimeField.to_representation gives for an aware datetime, several times faster:
    DRF looks the current time zone up again for every value (half of the job list's
    rendering time); callers with many values pass `tz` once. test_serializers compares both,
    in UTC and in another zone."""
    if not value:
        return None
    if api_settings.DATETIME_FORMAT.lower() != ISO_8601 or not settings.USE_TZ or value.tzinfo is None:
        return _DATETIME.to_representation(value)
    text = value.astimezone(tz or timezone.get_current_timezone()).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _batch_dict(batch: dict, tz) -> dict:
    return {
        "id": batch["id"],
        "batch_id": batch["batch_id"],
        "status": batch["status"],
        "created_at": _iso(batch["created_at"], tz),
        "completed_at": _iso(batch["completed_at"], tz),
        "request_counts": {
            "total": batch["request_total"],
            "completed": batch["request_completed"],
            "failed": batch["request_failed"],
        },
    }


def job_representation(row: dict) -> dict:
    """A job on the wire (API and `job ... --json`), from a row of `selectors.job_rows` / `job_row`.

    Built by hand from plain rows: a fraction of the time of model instances and serializer
    fields (docs/BENCHMARKS.md). `JobSerializer` documents this shape in the schema, and
    test_serializers validates real answers against the served schema.
    """
    batches = row["batches"]
    duration = row["keboola_job_duration_seconds"]
    tz = timezone.get_current_timezone()
    return {
        "id": row["id"],
        "name": row["name"],
        "status": row["status"],
        "batches": [_batch_dict(b, tz) for b in batches],
        "batch_count": len(batches),
        "completed_count": sum(1 for b in batches if b["status"] == "completed"),
        "failed_count": sum(1 for b in batches if b["status"] in FAILED_BATCH_STATUSES),
        "openai_secret_id": row["openai_secret_id"],
        "openai_secret_name": row["openai_secret_name"],
        "keboola_secret_id": row["keboola_secret_id"],
        "keboola_secret_name": row["keboola_secret_name"],
        "keboola_stack_url": row["keboola_stack_url"],
        "keboola_component_id": row["keboola_component_id"],
        "keboola_configuration_id": row["keboola_configuration_id"],
        "poll_interval_seconds": row["poll_interval_seconds"],
        "last_check_at": _iso(row["last_check_at"], tz),
        "next_check_at": _iso(row["next_check_at"], tz),
        "created_at": _iso(row["created_at"], tz),
        "updated_at": _iso(row["updated_at"], tz),
        "completed_at": _iso(row["completed_at"], tz),
        "keboola_job_id": row["keboola_job_id"] or None,
        "keboola_job_url": row["keboola_job_url"] or None,
        "keboola_job_status": row["keboola_job_status"],
        "keboola_job_finished_at": _iso(row["keboola_job_finished_at"], tz),
        "keboola_job_duration_seconds": None if duration is None else float(duration),
        "action_type": row["action_type"],
        "action_url": row["action_url"],
        "action_secret_id": row["action_secret_id"],
        "action_script_id": row["action_script_id"],
        "notify_emails": row["notify_emails"],
        "notify_webhook_url": row["notify_webhook_url"],
        "trigger_state": row["trigger_state"],
        "last_error": row["last_error"],
    }


class LogSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    job_id = serializers.IntegerField()
    status = serializers.CharField()
    level = serializers.CharField()
    message = serializers.CharField()
    created_at = serializers.DateTimeField()


class LogWithJobSerializer(LogSerializer):
    job_name = serializers.CharField(source="job.name")


# Documentation only. The API and the CLI build jobs with `job_representation`; these
# serializers describe that shape for the OpenAPI schema and never serialize anything.
# test_serializers validates real answers against the served schema, so the two cannot drift.


class RequestCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField()
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()


class BatchSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    batch_id = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    request_counts = RequestCountsSerializer()


class JobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    batches = BatchSerializer(many=True, read_only=True)
    batch_count = serializers.IntegerField(read_only=True)
    completed_count = serializers.IntegerField(read_only=True)
    failed_count = serializers.IntegerField(read_only=True, help_text="failed + cancelled + expired")
    openai_secret_id = serializers.IntegerField(allow_null=True)
    openai_secret_name = serializers.CharField(allow_null=True, read_only=True)
    keboola_secret_id = serializers.IntegerField(allow_null=True)
    keboola_secret_name = serializers.CharField(allow_null=True, read_only=True)
    keboola_stack_url = serializers.CharField()
    keboola_component_id = serializers.CharField()
    keboola_configuration_id = serializers.CharField()
    poll_interval_seconds = serializers.IntegerField()
    last_check_at = serializers.DateTimeField(allow_null=True)
    next_check_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    keboola_job_id = serializers.CharField(allow_null=True, read_only=True)
    keboola_job_url = serializers.CharField(allow_null=True, read_only=True)
    keboola_job_status = serializers.CharField(
        allow_blank=True, help_text="The triggered Keboola job's status, followed until it finishes."
    )
    keboola_job_finished_at = serializers.DateTimeField(allow_null=True)
    keboola_job_duration_seconds = serializers.FloatField(allow_null=True)
    action_type = serializers.CharField(help_text="keboola (default), webhook or script")
    action_url = serializers.CharField(allow_blank=True)
    action_secret_id = serializers.IntegerField(allow_null=True)
    action_script_id = serializers.IntegerField(
        allow_null=True, help_text="The script the script action runs."
    )
    notify_emails = serializers.CharField(allow_blank=True)
    notify_webhook_url = serializers.CharField(allow_blank=True)
    trigger_state = serializers.CharField()
    last_error = serializers.CharField(allow_blank=True)


class JobWithLogsSerializer(JobSerializer):
    logs = LogSerializer(many=True, required=False)


@extend_schema_serializer(many=False)  # one object wrapping a list, though a list route answers it
class JobListSerializer(serializers.Serializer):
    jobs = JobSerializer(many=True)
    total = serializers.IntegerField()


@extend_schema_serializer(many=False)  # one object wrapping a list, though a list route answers it
class LogPageSerializer(serializers.Serializer):
    logs = LogWithJobSerializer(many=True)
    total = serializers.IntegerField()


class JobCreateSerializer(serializers.Serializer):
    # Types only; services.job_create is the one place that validates values.
    name = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=None)
    batch_ids = serializers.ListField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False, allow_empty=True
    )
    openai_secret_id = serializers.IntegerField()
    keboola_secret_id = serializers.IntegerField(required=False, help_text="Required for the keboola action.")
    keboola_stack_url = serializers.CharField(allow_blank=True, trim_whitespace=False, required=False)
    keboola_component_id = serializers.CharField(allow_blank=True, trim_whitespace=False, required=False)
    keboola_configuration_id = serializers.CharField(allow_blank=True, trim_whitespace=False, required=False)
    poll_interval_seconds = serializers.IntegerField(required=False)
    action_type = serializers.CharField(required=False, help_text="keboola (default), webhook or script")
    action_url = serializers.CharField(required=False, allow_blank=True, help_text="For the webhook action.")
    action_secret_id = serializers.IntegerField(
        required=False, help_text="Optional http_header secret sent as X-TeckoChecker-Secret."
    )
    action_script_id = serializers.IntegerField(
        required=False, help_text="For the script action: the script to run once (its id)."
    )
    notify_emails = serializers.CharField(required=False, allow_blank=True, help_text="Comma-separated.")
    notify_webhook_url = serializers.CharField(required=False, allow_blank=True)


class JobUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(required=False, allow_null=True, allow_blank=True, trim_whitespace=False)
    keboola_stack_url = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    keboola_component_id = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    keboola_configuration_id = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    poll_interval_seconds = serializers.IntegerField(required=False, allow_null=True)
    action_url = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    notify_emails = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    notify_webhook_url = serializers.CharField(required=False, allow_null=True, allow_blank=True)


class HealthSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["healthy", "unhealthy"])
    timestamp = serializers.DateTimeField()
    database = serializers.ChoiceField(choices=["connected", "disconnected"])
    broker = serializers.ChoiceField(choices=["connected", "disconnected"])
    version = serializers.CharField()
    worker = serializers.DictField(required=False)
    scheduler = serializers.DictField(required=False)


@extend_schema_serializer(many=False)  # one object wrapping a list, though a list route answers it
class StatsSerializer(serializers.Serializer):
    total_jobs = serializers.IntegerField()
    active_jobs = serializers.IntegerField()
    paused_jobs = serializers.IntegerField()
    completed_jobs = serializers.IntegerField()
    completed_with_failures_jobs = serializers.IntegerField()
    failed_jobs = serializers.IntegerField()
    total_secrets = serializers.IntegerField()
    total_logs = serializers.IntegerField()
    uptime_seconds = serializers.FloatField()


class WebhookResultSerializer(serializers.Serializer):
    received = serializers.BooleanField(required=False)
    replay = serializers.BooleanField(required=False)
    event = serializers.CharField(required=False)
    jobs = serializers.ListField(child=serializers.IntegerField(), required=False)
    detail = serializers.CharField(required=False)
