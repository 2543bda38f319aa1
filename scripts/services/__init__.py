"""Scripts services: the one implementation behind the API, the admin, the CLI and the tasks."""

from scripts.services.environments import (
    environment_check,
    environment_info,
    environment_rebuild,
    environment_request_build,
)
from scripts.services.exceptions import (
    RunNotActive,
    RunNotFound,
    ScriptNotFound,
    ScriptStateConflict,
    VersionConflict,
    VersionNotFound,
)
from scripts.services.runs import (
    run_cancel,
    run_execute,
    run_get,
    run_request,
    run_scheduled,
    runs_prune,
    runs_reap,
    script_cancel_runs,
    script_run_now,
)
from scripts.services.schedules import next_runs, schedules_sync_all, script_next_runs, scripts_run_at_startup
from scripts.services.scripts import (
    script_create,
    script_delete,
    script_get,
    script_get_by_ref,
    script_update,
)
from scripts.services.templates import script_create_from_template, template_get, template_list
from scripts.services.versions import version_diff, version_get, version_list, version_restore

__all__ = [
    "RunNotActive",
    "RunNotFound",
    "ScriptNotFound",
    "ScriptStateConflict",
    "VersionConflict",
    "VersionNotFound",
    "environment_check",
    "environment_info",
    "environment_rebuild",
    "environment_request_build",
    "next_runs",
    "run_cancel",
    "run_execute",
    "run_get",
    "run_request",
    "run_scheduled",
    "runs_prune",
    "runs_reap",
    "schedules_sync_all",
    "script_cancel_runs",
    "script_create",
    "script_create_from_template",
    "script_delete",
    "script_get",
    "script_get_by_ref",
    "script_next_runs",
    "script_run_now",
    "script_update",
    "scripts_run_at_startup",
    "template_get",
    "template_list",
    "version_diff",
    "version_get",
    "version_list",
    "version_restore",
]
