"""Shapes of jobs, batches and logs on the wire (API.md, "Polling jobs")."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from polling.models import FAILED_BATCH_STATUSES, JobStatus


class RequestCountsSerializer(serializers.Serializer):
    total = serializers.IntegerField(source="request_total")
    completed = serializers.IntegerField(source="request_completed")
    failed = serializers.IntegerField(source="request_failed")


class BatchSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    batch_id = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    request_counts = RequestCountsSerializer(source="*")


def _iso(value):
    return serializers.DateTimeField().to_representation(value) if value else None


def batch_representation(batch) -> dict:
    """The same dict BatchSerializer gives, without building a serializer per batch."""
    return {
        "id": batch.id,
        "batch_id": batch.batch_id,
        "status": batch.status,
        "created_at": _iso(batch.created_at),
        "completed_at": _iso(batch.completed_at),
        "request_counts": {
            "total": batch.request_total,
            "completed": batch.request_completed,
            "failed": batch.request_failed,
        },
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


class JobSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    batches = serializers.SerializerMethodField()
    batch_count = serializers.SerializerMethodField()
    completed_count = serializers.SerializerMethodField()
    failed_count = serializers.SerializerMethodField(help_text="failed + cancelled + expired")
    openai_secret_id = serializers.IntegerField(allow_null=True)
    openai_secret_name = serializers.SerializerMethodField()
    keboola_secret_id = serializers.IntegerField(allow_null=True)
    keboola_secret_name = serializers.SerializerMethodField()
    keboola_stack_url = serializers.CharField()
    keboola_component_id = serializers.CharField()
    keboola_configuration_id = serializers.CharField()
    poll_interval_seconds = serializers.IntegerField()
    last_check_at = serializers.DateTimeField(allow_null=True)
    next_check_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    completed_at = serializers.DateTimeField(allow_null=True)
    keboola_job_id = serializers.SerializerMethodField()
    keboola_job_url = serializers.SerializerMethodField()
    keboola_job_status = serializers.CharField(
        allow_blank=True, help_text="The triggered Keboola job's status, followed until it finishes."
    )
    keboola_job_finished_at = serializers.DateTimeField(allow_null=True)
    keboola_job_duration_seconds = serializers.FloatField(allow_null=True)
    action_type = serializers.CharField(help_text="keboola (default) or webhook")
    action_url = serializers.CharField(allow_blank=True)
    action_secret_id = serializers.IntegerField(allow_null=True)
    notify_emails = serializers.CharField(allow_blank=True)
    notify_webhook_url = serializers.CharField(allow_blank=True)
    trigger_state = serializers.CharField()
    last_error = serializers.CharField(allow_blank=True)

    def _batches(self, job):
        return list(job.batches.all())  # prefetched by the selectors: no query per job

    @extend_schema_field(BatchSerializer(many=True))
    def get_batches(self, job) -> list[dict]:
        # Built by hand: a nested serializer per job was most of the list endpoint's time.
        # test_serializers proves it is identical to BatchSerializer's output.
        return [batch_representation(b) for b in self._batches(job)]

    def get_batch_count(self, job) -> int:
        return len(self._batches(job))

    def get_completed_count(self, job) -> int:
        return sum(1 for b in self._batches(job) if b.status == "completed")

    def get_failed_count(self, job) -> int:
        return sum(1 for b in self._batches(job) if b.status in FAILED_BATCH_STATUSES)

    def get_openai_secret_name(self, job) -> str | None:
        return job.openai_secret.name if job.openai_secret_id else None

    def get_keboola_secret_name(self, job) -> str | None:
        return job.keboola_secret.name if job.keboola_secret_id else None

    def get_keboola_job_id(self, job) -> str | None:
        return job.keboola_job_id or None

    def get_keboola_job_url(self, job) -> str | None:
        return job.keboola_job_url or None


class JobWithLogsSerializer(JobSerializer):
    logs = LogSerializer(many=True, required=False)


class JobListSerializer(serializers.Serializer):
    jobs = JobSerializer(many=True)
    total = serializers.IntegerField()


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
    action_type = serializers.CharField(required=False, help_text="keboola (default) or webhook")
    action_url = serializers.CharField(required=False, allow_blank=True, help_text="For the webhook action.")
    action_secret_id = serializers.IntegerField(
        required=False, help_text="Optional http_header secret sent as X-TeckoChecker-Secret."
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
