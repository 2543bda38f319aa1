"""The wire shapes of scripts and runs (SCRIPTS_CONTRACT.md), built in one place.

`script_representation` / `run_representation` build the answers; the serializer classes below
document the same shapes in the OpenAPI schema (schemathesis checks that they agree). Input is
documented by the *Write serializers but validated by the services, the one place that does.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from scripts.models import (
    EnvState,
    IntervalUnit,
    OverlapPolicy,
    RunState,
    RunTrigger,
    ScheduleType,
    Script,
    ScriptRun,
    ScriptVersion,
)
from scripts.services.environments import environment_info
from scripts.services.schedules import script_next_runs, script_schedule
from scripts.services.scripts import UPDATABLE_FIELDS


def _iso(value) -> str | None:
    return serializers.DateTimeField().to_representation(value) if value is not None else None


def run_representation(run: ScriptRun, *, with_output: bool = False) -> dict:
    data = {
        "id": run.pk,
        "script": run.script_id,
        "script_name": run.script.name,
        "script_slug": run.script.slug,
        "state": run.state,
        "trigger": run.trigger,
        "triggered_by": run.triggered_by,
        "polling_job": run.polling_job_id,
        "queued_at": _iso(run.queued_at),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_seconds": run.duration_seconds,
        "exit_code": run.exit_code,
        "peak_memory_kb": run.peak_memory_kb,
        "cpu_seconds": run.cpu_seconds,
        "message": run.message,
        "output_truncated": run.output_truncated,
    }
    if with_output:
        data["output"] = run.output
    return data


def env_representation(script: Script) -> list[dict]:
    """Plain variables with their value; secret ones with the secret's name only, never its value."""
    return [
        {"name": var.name, "secret": var.secret.name}
        if var.secret_id
        else {"name": var.name, "value": var.value}
        for var in script.env_vars.all()
    ]


def _notify(script: Script) -> dict:
    return {
        "on_success": script.notify_on_success,
        "on_failure": script.notify_on_failure,
        "emails": [e for e in script.notify_emails.split(",") if e],
    }


# The settings that are not one model field each.
_COMPOSITE_SETTINGS = {"env": env_representation, "schedule": script_schedule, "notify": _notify}


def script_settings(script: Script) -> dict:
    """Everything a user can set on a script (the fields script_update takes), as the API and a
    bundle show it. Built from UPDATABLE_FIELDS, so a new setting appears in both at once."""
    return {
        field: _COMPOSITE_SETTINGS[field](script) if field in _COMPOSITE_SETTINGS else getattr(script, field)
        for field in UPDATABLE_FIELDS
    }


def script_representation(script: Script) -> dict:
    """A script on the wire; `script.last_run` is set by the selectors (None without runs)."""
    environment = environment_info(script=script)
    last_run = getattr(script, "last_run", None)
    return {
        "id": script.pk,
        "slug": script.slug,
        **script_settings(script),
        "environment": {**environment, "built_at": _iso(environment["built_at"])},
        "next_runs": [_iso(t) for t in script_next_runs(script=script)],
        "last_run": run_representation(last_run) if last_run is not None else None,
        "version": script.version,
        "created_at": _iso(script.created_at),
        "updated_at": _iso(script.updated_at),
    }


def version_representation(version: ScriptVersion, *, current: int, with_code: bool = False) -> dict:
    data = {
        "number": version.number,
        "created_at": _iso(version.created_at),
        "author": version.author,
        "added": version.added,
        "removed": version.removed,
        "restored_from": version.restored_from,
        "current": version.number == current,
    }
    if with_code:
        data["code"] = version.code
        data["requirements"] = version.requirements
    return data


# --- the documented shapes -----------------------------------------------------------------


class RunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    script = serializers.IntegerField(help_text="The script's id.")
    script_name = serializers.CharField()
    script_slug = serializers.CharField()
    state = serializers.ChoiceField(choices=RunState.choices)
    trigger = serializers.ChoiceField(choices=RunTrigger.choices)
    triggered_by = serializers.CharField(
        allow_blank=True, help_text="A URL trigger's API key (name and prefix)."
    )
    polling_job = serializers.IntegerField(allow_null=True, help_text="The polling job that started it.")
    queued_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)
    exit_code = serializers.IntegerField(allow_null=True)
    peak_memory_kb = serializers.IntegerField(allow_null=True)
    cpu_seconds = serializers.FloatField(allow_null=True)
    message = serializers.CharField(allow_blank=True, help_text="Why it ended so (timeout, limit, cancel).")
    output_truncated = serializers.BooleanField()


class RunDetailSerializer(RunSerializer):
    output = serializers.CharField(
        allow_blank=True, help_text="stdout and stderr interleaved, capped at SCRIPTS_OUTPUT_MAX_BYTES."
    )


@extend_schema_serializer(many=False)  # one object wrapping a list, though a list route answers it
class RunListSerializer(serializers.Serializer):
    runs = RunSerializer(many=True)
    total = serializers.IntegerField()


class EnvVarSerializer(serializers.Serializer):
    name = serializers.CharField()
    value = serializers.CharField(required=False, allow_blank=True, help_text="A plain value.")
    secret = serializers.CharField(
        required=False, help_text="The name of a vault secret (its value is never shown)."
    )


class ScheduleSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=ScheduleType.choices)
    every = serializers.IntegerField(required=False, min_value=1, help_text="interval: how many units")
    unit = serializers.ChoiceField(choices=IntervalUnit.choices, required=False)
    cron = serializers.CharField(required=False, help_text="cron: five fields, e.g. '0 3 * * *'")
    timezone = serializers.CharField(required=False, help_text="cron: an IANA time zone (default UTC)")


class NotifySerializer(serializers.Serializer):
    on_success = serializers.BooleanField(required=False)
    on_failure = serializers.BooleanField(required=False)
    emails = serializers.ListField(child=serializers.CharField(), required=False)


class EnvironmentSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=EnvState.choices)
    error = serializers.CharField(allow_blank=True)
    python_version = serializers.CharField(allow_blank=True)
    disk_bytes = serializers.IntegerField(allow_null=True)
    built_at = serializers.DateTimeField(allow_null=True)


class EnvironmentCheckSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    problems = serializers.ListField(child=serializers.CharField())
    python_version = serializers.CharField(allow_blank=True)


class ScriptSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    slug = serializers.CharField(help_text="The safe name: made from the name once, unique, never changes.")
    folder = serializers.CharField(allow_blank=True)
    code = serializers.CharField(allow_blank=True)
    requirements = serializers.CharField(allow_blank=True)
    python_version = serializers.CharField()
    timeout_seconds = serializers.IntegerField()
    memory_mb = serializers.IntegerField()
    cpu_seconds = serializers.IntegerField()
    network = serializers.BooleanField()
    enabled = serializers.BooleanField()
    url_trigger = serializers.BooleanField(
        help_text="May an API key run it: POST /api/scripts/{slug}/trigger."
    )
    url_trigger_get = serializers.BooleanField(help_text="The trigger also answers GET.")
    env = EnvVarSerializer(many=True)
    schedule = ScheduleSerializer()
    overlap = serializers.ChoiceField(choices=OverlapPolicy.choices)
    notify = NotifySerializer()
    environment = EnvironmentSerializer()
    next_runs = serializers.ListField(child=serializers.DateTimeField())
    last_run = RunSerializer(allow_null=True)
    version = serializers.IntegerField(
        help_text="The newest version of the code and requirements; send it back as base_version."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


@extend_schema_serializer(many=False)  # one object wrapping a list, though a list route answers it
class ScriptListSerializer(serializers.Serializer):
    scripts = ScriptSerializer(many=True)
    total = serializers.IntegerField()


class ScriptWriteSerializer(serializers.Serializer):
    """Documentation of the body; `services.script_create` / `script_update` validate it."""

    name = serializers.CharField()
    folder = serializers.CharField(required=False, allow_blank=True)
    code = serializers.CharField(required=False, allow_blank=True)
    requirements = serializers.CharField(required=False, allow_blank=True, help_text="pip lines")
    python_version = serializers.CharField(required=False, help_text="One of GET /api/pythons.")
    timeout_seconds = serializers.IntegerField(required=False)
    memory_mb = serializers.IntegerField(required=False)
    cpu_seconds = serializers.IntegerField(required=False)
    network = serializers.BooleanField(required=False)
    enabled = serializers.BooleanField(required=False)
    url_trigger = serializers.BooleanField(required=False)
    url_trigger_get = serializers.BooleanField(required=False)
    env = EnvVarSerializer(many=True, required=False)
    schedule = ScheduleSerializer(required=False)
    overlap = serializers.ChoiceField(choices=OverlapPolicy.choices, required=False)
    notify = NotifySerializer(required=False)
    template = serializers.CharField(
        required=False,
        help_text=(
            "Create only: start from a built-in template (GET /api/script-templates). Fields "
            "given win; `env` adds to the template's variables by name."
        ),
    )


class ScriptPatchSerializer(ScriptWriteSerializer):
    name = serializers.CharField(required=False)
    base_version = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text=(
            "The version your edit started from. A change of code or requirements is refused "
            "with 409 when a newer version was saved meanwhile. Without it, the last save wins."
        ),
    )


class VersionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    author = serializers.CharField(allow_blank=True, help_text="Who saved it.")
    added = serializers.IntegerField(help_text="Lines added against the version before it.")
    removed = serializers.IntegerField(help_text="Lines removed against the version before it.")
    restored_from = serializers.IntegerField(allow_null=True, help_text="The version a restore brought back.")
    current = serializers.BooleanField()


class VersionDetailSerializer(VersionSerializer):
    code = serializers.CharField(allow_blank=True)
    requirements = serializers.CharField(allow_blank=True)


@extend_schema_serializer(many=False)  # one object wrapping a list, though a list route answers it
class VersionListSerializer(serializers.Serializer):
    versions = VersionSerializer(many=True)
    total = serializers.IntegerField()
    current = serializers.IntegerField()


# Built with type(): `from` is a keyword, so it cannot be a class attribute written out.
VersionDiffSerializer = type(
    "VersionDiffSerializer",
    (serializers.Serializer,),
    {
        "from": serializers.IntegerField(help_text="The version compared from."),
        "to": serializers.IntegerField(help_text="The version compared to."),
        "added": serializers.IntegerField(),
        "removed": serializers.IntegerField(),
        "code_diff": serializers.CharField(allow_blank=True, help_text="A unified diff of the code."),
        "requirements_diff": serializers.CharField(allow_blank=True),
    },
)


class PythonSerializer(serializers.Serializer):
    version = serializers.CharField()
    path = serializers.CharField()
    default = serializers.BooleanField()


class PythonListSerializer(serializers.Serializer):
    pythons = PythonSerializer(many=True)


class SchedulePreviewRequestSerializer(serializers.Serializer):
    schedule = ScheduleSerializer()


class SchedulePreviewSerializer(serializers.Serializer):
    next_runs = serializers.ListField(child=serializers.DateTimeField())


def template_representation(template) -> dict:
    return {
        "name": template.name,
        "title": template.title,
        "description": template.description,
        "network": template.network,
        "requirements": template.requirements,
        "code": template.code,
        "variables": [
            {"name": v.name, "value": v.value, "secret_type": v.secret_type, "help": v.help}
            for v in template.variables
        ],
    }


class TemplateVariableSerializer(serializers.Serializer):
    name = serializers.CharField()
    value = serializers.CharField(allow_blank=True, help_text="A plain variable's starting value.")
    secret_type = serializers.CharField(
        allow_blank=True, help_text="Set when the variable must name a vault secret of this type."
    )
    help = serializers.CharField(allow_blank=True)


class TemplateSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="What POST /api/scripts takes as `template`.")
    title = serializers.CharField()
    description = serializers.CharField()
    network = serializers.BooleanField()
    requirements = serializers.CharField(allow_blank=True)
    code = serializers.CharField()
    variables = TemplateVariableSerializer(many=True)


class TemplateListSerializer(serializers.Serializer):
    templates = TemplateSerializer(many=True)
