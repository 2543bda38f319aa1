"""Admin for scripts and their runs. Saving, running, rebuilding and deleting go through
`scripts.services`, so the admin validates exactly like the API and `manage.py script`.
Schedules are django-celery-beat periodic tasks ("Periodic tasks" in the admin) that the
services keep in step; edit a script's schedule here, on its own page.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from scripts import services
from scripts.models import IntervalUnit, OverlapPolicy, ScheduleType, Script, ScriptRun, ScriptVersion
from scripts.services.schedules import script_next_runs
from secrets_vault.admin import ServiceForm
from teckochecker.admin_actions import ReadOnlyAdmin, apply_each
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
    # Not stripped: a save must keep the code as typed (a trailing newline dropped would be a
    # change, and so a version of its own).
    code = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 20, "cols": 100, "class": "vLargeTextField"}),
    )
    requirements = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 60}),
        help_text="pip lines, e.g. requests==2.32.3",
    )
    python_version = forms.ChoiceField(choices=())
    timeout_seconds = forms.IntegerField(label="Timeout (seconds)")
    memory_mb = forms.IntegerField(label="Memory limit (MB)")
    cpu_seconds = forms.IntegerField(label="CPU-time limit (seconds)")
    network = forms.BooleanField(required=False, help_text="May the script use the network?")
    enabled = forms.BooleanField(required=False, initial=True)
    url_trigger = forms.BooleanField(
        label="URL trigger",
        required=False,
        help_text="An API key may run it: POST /api/scripts/<safe name>/trigger.",
    )
    url_trigger_get = forms.BooleanField(
        label="URL trigger by GET", required=False, help_text="The trigger URL also answers GET."
    )
    schedule_type = forms.ChoiceField(label="Schedule", choices=ScheduleType.choices)
    schedule_every = forms.IntegerField(label="Every", required=False)
    schedule_unit = forms.ChoiceField(label="Unit", choices=IntervalUnit.choices, required=False)
    schedule_cron = forms.CharField(label="Cron", required=False, help_text="Five fields, e.g. 0 3 * * *")
    schedule_timezone = forms.CharField(label="Time zone", initial="UTC")
    overlap = forms.ChoiceField(choices=OverlapPolicy.choices)
    notify_on_success = forms.BooleanField(required=False)
    notify_on_failure = forms.BooleanField(required=False)
    notify_emails = forms.CharField(label="Notify emails (comma-separated)", required=False)
    # The version this form was opened at: saving code over a newer version is refused.
    base_version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    # Who saves (set per request by ScriptAdmin.get_form).
    author = ""

    initial_from_instance = (
        "name", "folder", "code", "requirements", "python_version", "timeout_seconds", "memory_mb",
        "cpu_seconds", "network", "enabled", "url_trigger", "url_trigger_get", "schedule_type", "schedule_every", "schedule_unit",
        "schedule_cron", "schedule_timezone", "overlap", "notify_on_success", "notify_on_failure",
        "notify_emails", "version",
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

        self.initial.setdefault("base_version", self.initial.pop("version", None))

        self.fields["python_version"].choices = _python_choices()
        if self.instance.pk is None:
            for field, value in limit_defaults().items():
                self.fields[field].initial = value
            self.fields["python_version"].initial = default_python_version()
        elif self.instance.python_version not in dict(self.fields["python_version"].choices):
            self.fields["python_version"].choices.append(
                (self.instance.python_version, self.instance.python_version)
            )

    # A browser sends a textarea's lines with CRLF; stored as typed, unchanged code would differ.
    def clean_code(self) -> str:
        return self.cleaned_data["code"].replace("\r\n", "\n")

    def clean_requirements(self) -> str:
        return self.cleaned_data["requirements"].replace("\r\n", "\n")

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
                "memory_mb", "cpu_seconds", "network", "enabled", "url_trigger", "url_trigger_get", "overlap",
            )
        }  # fmt: skip
        data["schedule"] = schedule
        data["notify"] = {
            "on_success": cleaned["notify_on_success"],
            "on_failure": cleaned["notify_on_failure"],
            "emails": cleaned["notify_emails"],
        }
        if self.instance.pk is None:
            return services.script_create(**data, author=self.author)
        return services.script_update(
            script=self.instance, author=self.author, base_version=cleaned.get("base_version"), **data
        )


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


class ScriptVersionInline(admin.TabularInline):
    model = ScriptVersion
    fields = ("link", "created_at", "author", "change", "restored_from")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    verbose_name_plural = "Versions (open one to see its code, compare or restore)"

    @admin.display(description="Version")
    def link(self, version: ScriptVersion):
        url = reverse("admin:scripts_scriptversion_change", args=[version.pk])
        return format_html('<a href="{}">{}</a>', url, version.number)

    @admin.display(description="Change")
    def change(self, version: ScriptVersion) -> str:
        return f"+{version.added} -{version.removed}"

    def get_queryset(self, request):
        return super().get_queryset(request).defer("code", "requirements")

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
    "version",
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
    inlines = [ScriptVersionInline, ScriptRunInline]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"author": request.user.get_username()})

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


def _diff_html(diff: dict):
    """A diff as the admin shows it: one coloured line each (escaped)."""
    colours = {"+": "#1a7f37", "-": "#cf222e", "@": "#6e7781"}
    lines = (diff["code_diff"] + diff["requirements_diff"]).splitlines()
    if not lines:
        return format_html("<p>{}</p>", "No difference.")
    rows = ((colours.get(line[:1], "inherit"), line) for line in lines)
    return format_html(
        '<pre style="white-space: pre-wrap; max-height: 40em; overflow: auto">{}</pre>',
        format_html_join("\n", '<span style="color: {}">{}</span>', rows),
    )


@admin.register(ScriptVersion)
class ScriptVersionAdmin(ReadOnlyAdmin):
    """Read-only history; restoring goes through services.version_restore (a new version)."""

    list_display = ("script", "number", "created_at", "author", "change", "restored_from")
    list_filter = ("script",)
    search_fields = ("script__name", "script__slug", "author")
    list_select_related = ("script",)
    ordering = ("script", "-number")
    fields = (
        "script", "number", "created_at", "author", "change", "restored_from", "code_text",
        "requirements_text", "diff_to_previous",
    )  # fmt: skip
    readonly_fields = fields
    list_defer = ("code", "requirements")
    actions = ["restore", "compare"]

    @admin.display(description="Change")
    def change(self, version: ScriptVersion) -> str:
        return f"+{version.added} -{version.removed}"

    @admin.display(description="Code")
    def code_text(self, version: ScriptVersion):
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', version.code)

    @admin.display(description="Requirements")
    def requirements_text(self, version: ScriptVersion):
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', version.requirements or "-")

    @admin.display(description="Diff to the version before")
    def diff_to_previous(self, version: ScriptVersion):
        before = (
            ScriptVersion.objects.filter(script_id=version.script_id, number__lt=version.number)
            .order_by("-number")
            .values_list("number", flat=True)
            .first()
        )
        if before is None:
            return "The oldest version kept."
        return _diff_html(services.version_diff(script=version.script, old=before, new=version.number))

    @admin.action(permissions=["view"], description="Restore the selected version (a new version)")
    def restore(self, request, queryset) -> None:
        author = request.user.get_username()

        def restore_one(*, version: ScriptVersion) -> None:
            services.version_restore(script=version.script, number=version.number, author=author)

        apply_each(
            self, request, queryset, service=restore_one, argument="version", noun="version", done="restored"
        )

    @admin.action(permissions=["view"], description="Compare the two selected versions")
    def compare(self, request, queryset):
        picked = list(queryset.order_by("number").select_related("script"))
        if len(picked) != 2 or picked[0].script_id != picked[1].script_id:
            self.message_user(
                request, "Select exactly two versions of one script to compare.", messages.WARNING
            )
            return None
        old, new = picked
        diff = services.version_diff(script=old.script, old=old.number, new=new.number)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{old.script.name}: version {old.number} → {new.number} (+{diff['added']} -{diff['removed']})",
            "diff": _diff_html(diff),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/scripts/version_diff.html", context)


@admin.register(ScriptRun)
class ScriptRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "script", "state", "trigger", "queued_at", "duration_seconds", "exit_code")
    list_filter = ("state", "trigger")
    search_fields = ("script__name", "output", "message")
    list_select_related = ("script",)
    ordering = ("-queued_at", "-id")
    fields = (
        "script", "state", "trigger", "triggered_by", "polling_job", "queued_at", "started_at", "finished_at",
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

    # The list never needs the output (up to 1 MiB a run); the page of one run does.
    list_defer = ("output",)

    @admin.action(permissions=["view"], description="Cancel selected queued or running runs")
    def cancel_runs(self, request, queryset) -> None:
        apply_each(
            self, request, queryset, service=services.run_cancel, argument="run", noun="run", done="cancelled"
        )
