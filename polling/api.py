"""REST endpoints for jobs, logs and the system (contract: API.md). Views stay thin.

Jobs, logs and stats are viewsets, registered on the project's router (`urls.api_resources`);
health and the OpenAI webhook receiver are single public endpoints, not resources.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status as http
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from polling import selectors, services
from polling.models import JobStatus, LogLevel
from polling.serializers import (
    HealthSerializer,
    JobCreateSerializer,
    JobListSerializer,
    JobSerializer,
    JobUpdateSerializer,
    JobWithLogsSerializer,
    LogPageSerializer,
    LogSerializer,
    LogWithJobSerializer,
    StatsSerializer,
    WebhookResultSerializer,
    job_representation,
)
from polling.services.health import health_snapshot, uptime_seconds
from polling.services.webhooks import WebhookRejected, openai_webhook_accept, openai_webhook_verify
from secrets_vault.api import MessageSerializer
from teckochecker.api import ApiViewSet, bool_param, choice_param, int_param, text_param
from teckochecker.errors import ValidationFailed


def _job(job_id: int) -> dict:
    """A job on the wire (JobSerializer's shape, built from a plain row: see serializers)."""
    return job_representation(selectors.job_row(job_id=job_id))


JOB_EXAMPLE = OpenApiExample(
    "Three batches",
    request_only=True,
    value={
        "name": "Nightly embeddings",
        "batch_ids": ["batch_abc123", "batch_def456", "batch_ghi789"],
        "openai_secret_id": 1,
        "keboola_secret_id": 2,
        "keboola_stack_url": "https://connection.eu-central-1.keboola.com",
        "keboola_component_id": "kds-team.app-custom-python",
        "keboola_configuration_id": "123456",
        "poll_interval_seconds": 120,
    },
)
STATUS_PARAM = OpenApiParameter("status", str, enum=JobStatus.values, description="Only jobs in this status.")


JOB_ANSWER = {200: JobSerializer}
UPDATE_SCHEMA = extend_schema(
    summary="Change a job (partial)", request=JobUpdateSerializer, responses=JOB_ANSWER
)


# /api/jobs: every answer is a job built from the one job read (`_job`).
class JobViewSet(ApiViewSet):
    lookup_url_kwarg = "job_id"

    @extend_schema(
        operation_id="api_jobs_list",
        summary="List polling jobs, newest first",
        parameters=[
            STATUS_PARAM,
            OpenApiParameter("search", str, description="Substring of the name or of a batch id."),
            OpenApiParameter("limit", int, description="Page size (1-1000); all matches when absent."),
            OpenApiParameter("offset", int, description="Matches to skip."),
        ],
        responses={200: JobListSerializer},
    )
    def list(self, request):
        rows, total = selectors.job_rows(
            status=choice_param(request, "status", JobStatus.values),
            search=text_param(request, "search"),
            limit=int_param(request, "limit", None, 1, 1000),
            offset=int_param(request, "offset", 0, 0, 10**9),
        )
        return Response({"jobs": [job_representation(row) for row in rows], "total": total})

    @extend_schema(
        summary="Create a polling job; it is checked at once",
        request=JobCreateSerializer,
        responses={201: JobSerializer},
        examples=[JOB_EXAMPLE],
    )
    def create(self, request):
        data = JobCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.job_create(**data.validated_data)
        return Response(_job(job.pk), status=http.HTTP_201_CREATED)

    @extend_schema(
        summary="One job, optionally with its newest log entries",
        parameters=[
            OpenApiParameter("include_logs", bool, description="Add `logs`, newest first."),
            OpenApiParameter("log_limit", int, description="How many log entries (1-500, default 50)."),
        ],
        responses={200: JobWithLogsSerializer},
    )
    def retrieve(self, request, job_id: int):
        include_logs = bool_param(request, "include_logs")
        log_limit = int_param(request, "log_limit", 50, 1, 500)
        data = _job(job_id)
        if include_logs:
            logs, _ = selectors.job_logs(job_id=data["id"], limit=log_limit)
            data["logs"] = LogSerializer(logs, many=True).data
        return Response(data)

    @UPDATE_SCHEMA
    def update(self, request, job_id: int):
        job = services.job_get(job_id=job_id)
        if not isinstance(request.data, dict):
            raise ValidationFailed.from_errors({"non_field_errors": ["Expected a JSON object."]})
        data = JobUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        services.job_update(job=job, **data.validated_data)
        return Response(_job(job.pk))

    @UPDATE_SCHEMA
    def partial_update(self, request, job_id: int):
        return self.update(request, job_id)  # PUT is partial already (API.md)

    @extend_schema(summary="Delete a job with its batches and logs", responses={200: MessageSerializer})
    def destroy(self, request, job_id: int):
        job = services.job_get(job_id=job_id)
        services.job_delete(job=job)
        return Response({"message": f"Job '{job.name}' deleted successfully", "success": True})

    @extend_schema(summary="Pause an active job", request=None, responses=JOB_ANSWER)
    @action(detail=True, methods=["post"])
    def pause(self, request, job_id: int):
        services.job_pause(job=services.job_get(job_id=job_id))
        return Response(_job(job_id))

    @extend_schema(summary="Resume a paused job and check it at once", request=None, responses=JOB_ANSWER)
    @action(detail=True, methods=["post"])
    def resume(self, request, job_id: int):
        services.job_resume(job=services.job_get(job_id=job_id))
        return Response(_job(job_id))

    @extend_schema(
        operation_id="api_jobs_logs_retrieve",
        summary="A job's log, newest first (paginated)",
        parameters=[OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses={200: LogPageSerializer},
    )
    @action(detail=True, methods=["get"])
    def logs(self, request, job_id: int):
        job = services.job_get(job_id=job_id)
        logs, total = selectors.job_logs(
            job_id=job.pk,
            limit=int_param(request, "limit", 50, 1, 500),
            offset=int_param(request, "offset", 0, 0, 10**9),
        )
        for entry in logs:
            entry.job = job
        return Response({"logs": LogWithJobSerializer(logs, many=True).data, "total": total})


# /api/logs: events across all jobs.
class LogViewSet(ApiViewSet):
    @extend_schema(
        operation_id="api_logs_retrieve",
        summary="Recent events across all jobs, newest first",
        parameters=[
            OpenApiParameter("level", str, enum=LogLevel.values),
            OpenApiParameter("job", int, description="Only this job's events."),
            OpenApiParameter("limit", int),
            OpenApiParameter("offset", int),
        ],
        responses={200: LogPageSerializer},
    )
    def list(self, request):
        logs, total = selectors.log_list(
            level=choice_param(request, "level", LogLevel.values),
            job_id=int_param(request, "job", None, 1, 2**63 - 1),
            limit=int_param(request, "limit", 100, 1, 500),
            offset=int_param(request, "offset", 0, 0, 10**9),
        )
        return Response({"logs": LogWithJobSerializer(logs, many=True).data, "total": total})


# /api/stats: one object of counts (a resource with only a list route).
class StatsViewSet(ApiViewSet):
    @extend_schema(
        operation_id="api_stats_retrieve",
        summary="Counts per job status (they add up to total_jobs)",
        responses={200: StatsSerializer},
    )
    def list(self, request):
        return Response({**selectors.job_stats(), "uptime_seconds": uptime_seconds()})


class HealthView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []

    @extend_schema(
        summary="Health: database, broker, worker and scheduler liveness (public)",
        responses={200: HealthSerializer, 503: HealthSerializer},
    )
    def get(self, request):
        snapshot = health_snapshot()
        code = http.HTTP_200_OK if snapshot["status"] == "healthy" else http.HTTP_503_SERVICE_UNAVAILABLE
        return Response(HealthSerializer(snapshot).data, status=code)


class WebhookFailureThrottle(SimpleRateThrottle):
    """Deliveries that failed verification, per client address (API_THROTTLE_WEBHOOK)."""

    scope = "webhook"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class OpenAIWebhookView(APIView):
    """OpenAI calls this; the Standard Webhooks signature is the authentication.

    The signature is checked before anything else, and only deliveries that fail it count
    against the throttle: OpenAI sends a burst from a few addresses and retries what is
    refused, so a verified delivery is never answered 429."""

    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes: list = []

    @extend_schema(
        summary="Receive OpenAI batch webhooks (signature-verified; public)",
        request=None,
        responses={200: WebhookResultSerializer, 400: WebhookResultSerializer, 429: WebhookResultSerializer},
    )
    def post(self, request):
        try:
            event = openai_webhook_verify(payload=request.body, headers=dict(request.headers))
        except WebhookRejected:
            throttle = WebhookFailureThrottle()
            if not throttle.allow_request(request, self):
                self.throttled(request, throttle.wait())
            raise
        outcome = openai_webhook_accept(event=event)
        return Response(
            {
                "received": True,
                "replay": outcome.replay,
                "event": outcome.event_type,
                "jobs": outcome.jobs_checked or [],
            }
        )
