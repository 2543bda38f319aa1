"""Admin for scripts and their runs. Saving, running, rebuilding and deleting go through
`scripts.services`, so the admin validates exactly like the API and `manage.py script`.
Schedules are django-celery-beat periodic tasks ("Periodic tasks" in the admin) that the
services keep in step; edit a script's schedule here, on its own page.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from scripts import services
from scripts.models import IntervalUnit, OverlapPolicy, ScheduleType, Script, ScriptRun
from scripts.services.schedules import script_next_runs
from secrets_vault.admin import ServiceForm
from teckochecker.admin_actions import apply_each
from teckochecker.cli import fmt_time


def _python_choices():
    from scripts import environments

    return [
        (p.version, f"{p.version}{' (default)' if p.default else ''}")
        for p in environments.pythons_available()
    ]


class ScriptForm(ServiceForm):
    name = forms.CharField(max_length=255)
    folder = forms.CharField(required=False)
    code = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 20, "cols": 100, "class": "vLargeTextField"})
    )
    requirements = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 60}),
        help_text="pip lines, e.g. requests==2.32.3",
    )
    python_version = forms.ChoiceField(choices=())
    timeout_seconds = forms.IntegerField(label="Timeout (seconds)")
    memory_mb = forms.IntegerField(label="Memory limit (MB)")
    cpu_seconds = forms.IntegerField(label="CPU-time limit (seconds)")
    network = forms.BooleanField(required=False, help_text="May the script use the network?")
    enabled = forms.BooleanField(required=False, initial=True)
    schedule_type = forms.ChoiceField(label="Schedule", choices=ScheduleType.choices)
    schedule_every = forms.IntegerField(label="Every", required=False)
    schedule_unit = forms.ChoiceField(label="Unit", choices=IntervalUnit.choices, required=False)
    schedule_cron = forms.CharField(label="Cron", required=False, help_text="Five fields, e.g. 0 3 * * *")
    schedule_timezone = forms.CharField(label="Time zone", initial="UTC")
    overlap = forms.ChoiceField(choices=OverlapPolicy.choices)
    notify_on_success = forms.BooleanField(required=False)
    notify_on_failure = forms.BooleanField(required=False)
    notify_emails = forms.CharField(label="Notify emails (comma-separated)", required=False)

    initial_from_instance = (
        "name", "folder", "code", "requirements", "python_version", "timeout_seconds", "memory_mb",
        "cpu_seconds", "network", "enabled", "schedule_type", "schedule_every", "schedule_unit",
        "schedule_cron", "schedule_timezone", "overlap", "notify_on_success", "notify_on_failure",
        "notify_emails",
    )  # fmt: skip
    error_fields = {
        "schedule": "schedule_type",
        "schedule.type": "schedule_type",
        "schedule.every": "schedule_every",
        "schedule.unit": "schedule_unit",
        "schedule.cron": "schedule_cron",
        "schedule.timezone": "schedule_timezone",
        "notify": "notify_emails",
        "notify.emails": "notify_emails",
        "env": None,
    }

    class Meta(ServiceForm.Meta):
        model = Script

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from scripts.validation import default_python_version, limit_defaults

        self.fields["python_version"].choices = _python_choices()
        if self.instance.pk is None:
            for field, value in limit_defaults().items():
                self.fields[field].initial = value
            self.fields["python_version"].initial = default_python_version()
        elif self.instance.python_version not in dict(self.fields["python_version"].choices):
            self.fields["python_version"].choices.append(
                (self.instance.python_version, self.instance.python_version)
            )

    def call_service(self, cleaned: dict) -> Script:
        schedule = {"type": cleaned["schedule_type"], "timezone": cleaned["schedule_timezone"]}
        if cleaned["schedule_type"] == ScheduleType.INTERVAL:
            schedule.update(
                every=cleaned["schedule_every"], unit=cleaned["schedule_unit"] or IntervalUnit.MINUTES
            )
        elif cleaned["schedule_type"] == ScheduleType.CRON:
            schedule["cron"] = cleaned["schedule_cron"]
        data = {
            field: cleaned[field]
            for field in (
                "name", "folder", "code", "requirements", "python_version", "timeout_seconds",
                "memory_mb", "cpu_seconds", "network", "enabled", "overlap",
            )
        }  # fmt: skip
        data["schedule"] = schedule
        data["notify"] = {
            "on_success": cleaned["notify_on_success"],
            "on_failure": cleaned["notify_on_failure"],
            "emails": cleaned["notify_emails"],
        }
        if self.instance.pk is None:
            return services.script_create(**data)
        return services.script_update(script=self.instance, **data)


class ScriptRunInline(admin.TabularInline):
    model = ScriptRun
    fields = ("link", "state", "trigger", "queued_at", "duration_seconds", "exit_code", "message")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("-queued_at", "-id")
    show_change_link = False

    @admin.display(description="Run")
    def link(self, run: ScriptRun):
        return format_html(
            '<a href="{}">#{}</a>', reverse("admin:scripts_scriptrun_change", args=[run.pk]), run.pk
        )

    def get_queryset(self, request):
        return super().get_queryset(request).defer("output")

    def has_change_permission(self, request, obj=None) -> bool:
        return False


STATE_FIELDS = (
    "slug",
    "env_state",
    "env_error",
    "env_python",
    "env_disk_bytes",
    "env_built_at",
    "variables",
    "next_runs",
    "periodic_task",
    "created_at",
    "updated_at",
)


@admin.register(Script)
class ScriptAdmin(admin.ModelAdmin):
    form = ScriptForm
    list_display = ("name", "slug", "folder", "schedule_type", "enabled", "env_state", "updated_at")
    list_filter = ("enabled", "schedule_type", "env_state", "folder")
    search_fields = ("name", "slug", "folder")
    actions = ["run_now", "rebuild_environment"]
    inlines = [ScriptRunInline]

    def get_fieldsets(self, request, obj=None):
        fields = list(ScriptForm.base_fields)
        if obj is None:
            return [(None, {"fields": fields})]
        return [(None, {"fields": fields}), ("State", {"fields": STATE_FIELDS})]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else STATE_FIELDS

    def get_inline_instances(self, request, obj=None):
        return [] if obj is None else super().get_inline_instances(request, obj)

    @admin.display(description="Environment variables")
    def variables(self, script: Script):
        rows = [
            (v.name, f"secret '{v.secret.name}'" if v.secret_id else v.value) for v in script.env_vars.all()
        ]
        if not rows:
            return "None (set them through the API, the page or `manage.py script edit`)."
        return format_html("<table>{}</table>", format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", rows))

    @admin.display(description="Next runs")
    def next_runs(self, script: Script) -> str:
        return ", ".join(fmt_time(t) for t in script_next_runs(script=script)) or "—"

    def save_model(self, request, obj, form, change) -> None:
        pass  # saved by the form through services.script_create / script_update

    def delete_model(self, request, obj: Script) -> None:
        services.script_delete(script=obj)

    def delete_queryset(self, request, queryset) -> None:
        for script in queryset:
            services.script_delete(script=script)

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        perms_needed.discard(ScriptRun._meta.verbose_name)  # runs are read-only, yet go with it
        return deleted, counts, perms_needed, protected

    @admin.action(permissions=["change"], description="Run selected scripts now")
    def run_now(self, request, queryset) -> None:
        apply_each(
            self,
            request,
            queryset,
            service=services.script_run_now,
            argument="script",
            noun="script",
            done="queued to run",
        )

    @admin.action(permissions=["change"], description="Rebuild the environments of selected scripts")
    def rebuild_environment(self, request, queryset) -> None:
        apply_each(
            self,
            request,
            queryset,
            service=services.environment_rebuild,
            argument="script",
            noun="script",
            done="rebuilding their environment",
        )


@admin.register(ScriptRun)
class ScriptRunAdmin(admin.ModelAdmin):
    list_display = ("id", "script", "state", "trigger", "queued_at", "duration_seconds", "exit_code")
    list_filter = ("state", "trigger")
    search_fields = ("script__name", "output", "message")
    list_select_related = ("script",)
    ordering = ("-queued_at", "-id")
    fields = (
        "script", "state", "trigger", "polling_job", "queued_at", "started_at", "finished_at",
        "duration_seconds", "exit_code", "peak_memory_kb", "cpu_seconds", "message",
        "output_truncated", "output_text",
    )  # fmt: skip
    readonly_fields = fields
    actions = ["cancel_runs"]

    @admin.display(description="Output")
    def output_text(self, run: ScriptRun):
        return format_html(
            '<pre style="white-space: pre-wrap; max-height: 40em; overflow: auto">{}</pre>', run.output
        )

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        # The list never needs the output (up to 1 MiB a run); the page of one run does.
        return (
            qs
            if request.resolver_match and "change" in (request.resolver_match.url_name or "")
            else qs.defer("output")
        )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(permissions=["view"], description="Cancel selected queued or running runs")
    def cancel_runs(self, request, queryset) -> None:
        apply_each(
            self, request, queryset, service=services.run_cancel, argument="run", noun="run", done="cancelled"
        )
