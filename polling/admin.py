"""Admin for polling jobs, their batches and logs, and the service heartbeats.

Adding, editing, pausing, resuming, checking and deleting jobs go through `polling.services`, so
the admin validates exactly like the API and `manage.py job`.
"""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from polling import selectors, services
from polling.models import (
    FAILED_BATCH_STATUSES,
    BatchStatus,
    JobBatch,
    PollingJob,
    PollingLog,
    ServiceHeartbeat,
)
from polling.services.jobs import UPDATABLE_FIELDS
from secrets_vault.admin import ServiceForm
from secrets_vault.models import Secret, SecretType
from teckochecker.admin_actions import ReadOnlyAdmin, apply_each
from teckochecker.cli import fmt_time

RECENT_LOGS = 20


def _secrets_of(type_: str):
    return Secret.objects.filter(type=type_).defer("value").order_by("name")


class JobAddForm(ServiceForm):
    name = forms.CharField(max_length=255)
    batch_ids = forms.CharField(
        label="Batch IDs",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 60}),
        help_text="OpenAI batch IDs (batch_...), one per line; 1 to 10.",
    )
    openai_secret_id = forms.ModelChoiceField(label="OpenAI secret", queryset=_secrets_of(SecretType.OPENAI))
    keboola_secret_id = forms.ModelChoiceField(
        label="Keboola secret", queryset=_secrets_of(SecretType.KEBOOLA)
    )
    keboola_stack_url = forms.CharField(
        label="Keboola stack URL", help_text="e.g. https://connection.eu-central-1.keboola.com"
    )
    keboola_component_id = forms.CharField(label="Component ID", help_text="e.g. kds-team.app-custom-python")
    keboola_configuration_id = forms.CharField(label="Configuration ID")
    poll_interval_seconds = forms.IntegerField(label="Poll interval (seconds)")

    class Meta(ServiceForm.Meta):
        model = PollingJob

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Fresh querysets per form, and the interval bounds as configured now.
        self.fields["openai_secret_id"].queryset = _secrets_of(SecretType.OPENAI)
        self.fields["keboola_secret_id"].queryset = _secrets_of(SecretType.KEBOOLA)
        interval = self.fields["poll_interval_seconds"]
        interval.initial = settings.DEFAULT_POLL_INTERVAL
        interval.help_text = f"Between {settings.MIN_POLL_INTERVAL} and {settings.MAX_POLL_INTERVAL}."

    def call_service(self, cleaned: dict) -> PollingJob:
        return services.job_create(
            name=cleaned["name"],
            batch_ids=[line.strip() for line in cleaned["batch_ids"].splitlines() if line.strip()],
            openai_secret_id=cleaned["openai_secret_id"].pk,
            keboola_secret_id=cleaned["keboola_secret_id"].pk,
            keboola_stack_url=cleaned["keboola_stack_url"],
            keboola_component_id=cleaned["keboola_component_id"],
            keboola_configuration_id=cleaned["keboola_configuration_id"],
            poll_interval_seconds=cleaned["poll_interval_seconds"],
        )


class JobChangeForm(ServiceForm):
    name = forms.CharField(max_length=255)
    keboola_stack_url = forms.CharField(label="Keboola stack URL", required=False)
    keboola_component_id = forms.CharField(label="Component ID", required=False)
    keboola_configuration_id = forms.CharField(label="Configuration ID", required=False)
    poll_interval_seconds = forms.IntegerField(label="Poll interval (seconds)")
    action_url = forms.CharField(label="Webhook action URL", required=False)
    notify_emails = forms.CharField(label="Notify emails (comma-separated)", required=False)
    notify_webhook_url = forms.CharField(label="Notification webhook URL", required=False)
    initial_from_instance = UPDATABLE_FIELDS  # the fields services.job_update accepts

    class Meta(ServiceForm.Meta):
        model = PollingJob

    def call_service(self, cleaned: dict) -> PollingJob:
        changes = {field: cleaned[field] for field in self.changed_data}
        return services.job_update(job=self.instance, **changes) if changes else self.instance


class JobBatchInline(admin.TabularInline):
    model = JobBatch
    fields = ("batch_id", "status", "requests", "created_at", "completed_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description="Requests (completed/total, failed)")
    def requests(self, batch: JobBatch) -> str:
        text = f"{batch.request_completed}/{batch.request_total}"
        return f"{text}, {batch.request_failed} failed" if batch.request_failed else text

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # statuses come from OpenAI; the inline is shown read-only

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


STATE_FIELDS = (
    "status",
    "batch_progress",
    "openai_secret",
    "keboola_secret",
    "last_check_at",
    "next_check_at",
    "created_at",
    "updated_at",
    "completed_at",
    "trigger_state",
    "action_type",
    "keboola_job_id",
    "keboola_job_url",
    "keboola_job_status",
    "keboola_job_duration_seconds",
    "keboola_job_finished_at",
    "last_error",
)


@admin.register(PollingJob)
class PollingJobAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "batch_progress", "last_check_at", "next_check_at", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "batches__batch_id")
    ordering = ("-created_at", "-id")
    actions = ["pause_jobs", "resume_jobs", "check_now"]
    inlines = [JobBatchInline]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("openai_secret", "keboola_secret")
            .defer("openai_secret__value", "keboola_secret__value")
            .annotate(
                batch_total=Count("batches", distinct=True),
                batch_completed=Count(
                    "batches", filter=Q(batches__status=BatchStatus.COMPLETED), distinct=True
                ),
                batch_failed=Count(
                    "batches", filter=Q(batches__status__in=FAILED_BATCH_STATUSES), distinct=True
                ),
            )
        )

    @admin.display(description="Batches")
    def batch_progress(self, job: PollingJob) -> str:
        text = f"{job.batch_completed}/{job.batch_total} completed"
        return f"{text}, {job.batch_failed} failed" if job.batch_failed else text

    @admin.display(description=f"Recent logs (newest {RECENT_LOGS})")
    def recent_logs(self, job: PollingJob):
        logs, total = selectors.job_logs(job_id=job.pk, limit=RECENT_LOGS)
        if not logs:
            return "No log entries yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((fmt_time(e.created_at), e.level, e.status, e.message) for e in logs),
        )
        link = reverse("admin:polling_pollinglog_changelist") + f"?job={job.pk}"
        return format_html(
            "<table><thead><tr><th>Time</th><th>Level</th><th>Event</th><th>Message</th></tr></thead>"
            '<tbody>{}</tbody></table><p><a href="{}">All {} log entries of this job</a></p>',
            rows,
            link,
            total,
        )

    # --- add and change go through the services ------------------------------------------------

    def get_form(self, request, obj=None, change=False, **kwargs):
        return JobAddForm if obj is None else JobChangeForm

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": list(JobAddForm.base_fields)})]
        return [
            (None, {"fields": list(JobChangeForm.base_fields)}),
            ("State", {"fields": STATE_FIELDS}),
            ("Log", {"fields": ("recent_logs",)}),
        ]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else (*STATE_FIELDS, "recent_logs")

    def get_inline_instances(self, request, obj=None):
        return [] if obj is None else super().get_inline_instances(request, obj)

    def save_model(self, request, obj, form, change) -> None:
        pass  # saved by the form through services.job_create / job_update

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Logs are read-only in the admin, yet they go with their job.
        perms_needed.discard(PollingLog._meta.verbose_name)
        return deleted, counts, perms_needed, protected

    def delete_model(self, request, obj: PollingJob) -> None:
        services.job_delete(job=obj)

    def delete_queryset(self, request, queryset) -> None:
        for job in queryset:
            services.job_delete(job=job)

    # --- actions ---------------------------------------------------------------------------

    @admin.action(permissions=["change"], description="Pause selected jobs")
    def pause_jobs(self, request, queryset) -> None:
        apply_each(
            self, request, queryset, service=services.job_pause, argument="job", noun="job", done="paused"
        )

    @admin.action(permissions=["change"], description="Resume selected jobs")
    def resume_jobs(self, request, queryset) -> None:
        apply_each(
            self, request, queryset, service=services.job_resume, argument="job", noun="job", done="resumed"
        )

    @admin.action(permissions=["change"], description="Check selected jobs now")
    def check_now(self, request, queryset) -> None:
        apply_each(
            self,
            request,
            queryset,
            service=services.job_check_now,
            argument="job",
            noun="job",
            done="queued for an immediate check",
        )


@admin.register(PollingLog)
class PollingLogAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "job", "level", "status", "short_message")
    list_filter = ("level", "status")
    search_fields = ("message",)
    list_select_related = ("job",)
    ordering = ("-created_at", "-id")

    @admin.display(description="Message")
    def short_message(self, log: PollingLog) -> str:
        return log.message if len(log.message) <= 120 else log.message[:119] + "…"


@admin.register(ServiceHeartbeat)
class ServiceHeartbeatAdmin(ReadOnlyAdmin):
    list_display = ("name", "kind", "hostname", "pid", "started_at", "last_seen", "alive")

    @admin.display(boolean=True, description="Alive")
    def alive(self, beat: ServiceHeartbeat) -> bool:
        return beat.last_seen >= timezone.now() - timedelta(seconds=settings.HEARTBEAT_STALE_SECONDS)
