"""Export: every script and every live polling job as one bundle (see bundles/services/__init__.py)."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Prefetch

from polling.models import ActionType, JobStatus, PollingJob
from scripts.models import Script, ScriptEnvVar
from scripts.serializers import script_settings
from scripts.services.scripts import UPDATABLE_FIELDS
from secrets_vault.models import Secret
from teckochecker.errors import Conflict, ValidationFailed

FORMAT = "teckochecker-bundle"
VERSION = 1

# A script in a bundle: its safe name and everything a user can set on it, no more.
SCRIPT_KEYS = ("slug", *UPDATABLE_FIELDS)
JOB_KEYS = ("name", "paused", "batch_ids", "poll_interval_seconds", "openai_secret", "action", "notify")
ACTION_KEYS = {
    ActionType.KEBOOLA: ("type", "secret", "stack_url", "component_id", "configuration_id"),
    ActionType.WEBHOOK: ("type", "url", "secret"),
    ActionType.SCRIPT: ("type", "script"),
}
JOB_NOTIFY_KEYS = ("emails", "webhook_url")
# Only these jobs are exported and matched for update: a finished job is history, and importing
# it again as a new job would watch batches that are already done and trigger its action again.
LIVE_STATUSES = (JobStatus.ACTIVE, JobStatus.PAUSED)
# What job_update cannot change: an import refuses a difference here instead of guessing.
FIXED_JOB_FIELDS = ("batch_ids", "openai_secret", "action.type", "action.secret", "action.script")
# The polling services' field names, as the bundle spells them.
JOB_FIELD_PATHS = {
    "openai_secret_id": "openai_secret",
    "keboola_secret_id": "action.secret",
    "action_secret_id": "action.secret",
    "action_script_id": "action.script",
    "action_type": "action.type",
    "keboola_stack_url": "action.stack_url",
    "keboola_component_id": "action.component_id",
    "keboola_configuration_id": "action.configuration_id",
    "action_url": "action.url",
    "notify_emails": "notify.emails",
    "notify_webhook_url": "notify.webhook_url",
}


class BundleInvalid(ValidationFailed):
    """The bundle cannot be imported; `errors` maps each place (`scripts[hello].env`) to its
    messages. Nothing was written."""

    @classmethod
    def from_errors(cls, errors: dict[str, list[str]]) -> BundleInvalid:
        count = sum(len(m) for m in errors.values())
        place, messages = next(iter(errors.items()))
        noun = "error" if count == 1 else "errors"
        where = "" if place == "non_field_errors" else f"{place}: "
        return cls(f"Nothing was imported ({count} {noun}). {where}{messages[0]}", errors=errors)


class BundleExportConflict(Conflict):
    """Two live jobs share a name, so a bundle could not tell them apart."""


# --- export ---------------------------------------------------------------------------------------


def _emails(text: str) -> list[str]:
    return [e for e in text.split(",") if e]


def script_entry(script: Script) -> dict:
    """A script as a bundle holds it (its env variables prefetched or not): its safe name and
    its settings, the variables by name so that a bundle's text does not depend on row ids."""
    settings = script_settings(script)
    return {"slug": script.slug, **settings, "env": sorted(settings["env"], key=lambda var: var["name"])}


def _secret_name(secret: Secret | None) -> str | None:
    return secret.name if secret is not None else None


def job_entry(job: PollingJob) -> dict:
    """A polling job's definition as a bundle holds it (no status beyond paused, no progress)."""
    action: dict[str, Any] = {"type": job.action_type}
    if job.action_type == ActionType.KEBOOLA:
        action.update(
            secret=_secret_name(job.keboola_secret),
            stack_url=job.keboola_stack_url,
            component_id=job.keboola_component_id,
            configuration_id=job.keboola_configuration_id,
        )
    elif job.action_type == ActionType.WEBHOOK:
        action.update(url=job.action_url, secret=_secret_name(job.action_secret))
    elif job.action_type == ActionType.SCRIPT:
        action["script"] = job.action_script.slug if job.action_script is not None else None
    return {
        "name": job.name,
        "paused": job.status == JobStatus.PAUSED,
        "batch_ids": sorted(b.batch_id for b in job.batches.all()),
        "poll_interval_seconds": job.poll_interval_seconds,
        "openai_secret": _secret_name(job.openai_secret),
        "action": action,
        "notify": {"emails": _emails(job.notify_emails), "webhook_url": job.notify_webhook_url},
    }


def scripts_query():
    variables = ScriptEnvVar.objects.select_related("secret").defer("secret__value")
    return Script.objects.prefetch_related(Prefetch("env_vars", queryset=variables))


def jobs_query():
    # Secret values stay encrypted and unread: only names are exported.
    return (
        PollingJob.objects.select_related("openai_secret", "keboola_secret", "action_secret", "action_script")
        .defer("openai_secret__value", "keboola_secret__value", "action_secret__value")
        .prefetch_related("batches")
    )


def bundle_export() -> dict:
    """Every script and every active or paused job. Raises BundleExportConflict when two live
    jobs share a name (an import matches jobs by name)."""
    jobs = list(jobs_query().filter(status__in=LIVE_STATUSES).order_by("name", "id"))
    by_name: dict[str, list[int]] = {}
    for job in jobs:
        by_name.setdefault(job.name, []).append(job.pk)
    shared = {name: ids for name, ids in by_name.items() if len(ids) > 1}
    if shared:
        name, ids = next(iter(sorted(shared.items())))
        raise BundleExportConflict(
            f"Active or paused jobs {', '.join(f'#{i}' for i in ids)} are all named '{name}'; a bundle "
            "matches jobs by name, so rename all but one before exporting."
        )
    return {
        "format": FORMAT,
        "version": VERSION,
        "scripts": [script_entry(s) for s in scripts_query().order_by("slug")],
        "jobs": [job_entry(j) for j in jobs],
    }


def bundle_dumps(bundle: dict) -> str:
    """The bundle as text: sorted keys, two-space indent, UTF-8 as is, one final newline."""
    return json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
