"""Every field of a script or a polling job is either in the bundle or runtime state on purpose.

A new model field fails this test until it is classified: a setting a user chooses belongs in
`script_entry`/`job_entry` and the import (bundles/services), state that happens belongs below.
"""

from polling.models import JobBatch, PollingJob
from scripts.models import Script, ScriptEnvVar

SCRIPT_BUNDLED = {
    "slug",
    "name",
    "folder",
    "code",
    "requirements",
    "python_version",
    "timeout_seconds",
    "memory_mb",
    "cpu_seconds",
    "network",
    "enabled",
    "schedule_type",
    "schedule_every",
    "schedule_unit",
    "schedule_cron",
    "schedule_timezone",
    "overlap",
    "notify_on_success",
    "notify_on_failure",
    "notify_emails",
    "url_trigger",
    "url_trigger_get",
}
SCRIPT_RUNTIME = {
    "id",
    "periodic_task",  # made from the schedule by the scripts service
    "env_state",
    "env_error",
    "env_python",
    "env_python_path",
    "env_built_at",
    "env_disk_bytes",
    "env_requirements_hash",
    "env_build_token",
    "version",  # the history stays where it was written
    "created_at",
    "updated_at",
}
JOB_BUNDLED = {
    "name",
    "status",  # only whether it is paused
    "poll_interval_seconds",
    "openai_secret",
    "action_type",
    "keboola_secret",
    "keboola_stack_url",
    "keboola_component_id",
    "keboola_configuration_id",
    "action_url",
    "action_secret",
    "action_script",
    "notify_emails",
    "notify_webhook_url",
}
JOB_RUNTIME = {
    "id",
    "last_check_at",
    "next_check_at",
    "created_at",
    "updated_at",
    "completed_at",
    "lease_token",
    "lease_expires_at",
    "consecutive_failures",
    "confirm_requested_at",
    "trigger_state",
    "trigger_attempts",
    "trigger_started_at",
    "keboola_job_id",
    "keboola_job_url",
    "keboola_job_status",
    "keboola_job_finished_at",
    "keboola_job_duration_seconds",
    "keboola_next_follow_at",
    "keboola_follow_failures",
    "last_error",
}


def fields(model) -> set[str]:
    return {f.name for f in model._meta.concrete_fields}


def unclassified(model, *known: set[str]) -> list[str]:
    return sorted(fields(model).symmetric_difference(set().union(*known)))


def test_every_script_field_is_bundled_or_runtime_state():
    assert unclassified(Script, SCRIPT_BUNDLED, SCRIPT_RUNTIME) == [], (
        "bundle it, or list it as runtime state"
    )
    assert fields(ScriptEnvVar) == {"id", "script", "name", "value", "secret"}


def test_every_job_field_is_bundled_or_runtime_state():
    assert unclassified(PollingJob, JOB_BUNDLED, JOB_RUNTIME) == [], "bundle it, or list it as runtime state"
    # A batch is its id in the bundle; its status and counts are progress.
    assert "batch_id" in fields(JobBatch)
