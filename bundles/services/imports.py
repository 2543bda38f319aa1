"""Import: apply a bundle completely or not at all (see bundles/services/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import connection, transaction

from bundles.services.checks import Problems, bundle_check
from bundles.services.export import (
    FIXED_JOB_FIELDS,
    JOB_FIELD_PATHS,
    LIVE_STATUSES,
    BundleInvalid,
    job_entry,
    jobs_query,
    script_entry,
    scripts_query,
)
from polling.models import ActionType, PollingJob
from polling.services import job_create, job_pause, job_resume, job_update
from scripts.models import Script
from scripts.services import script_create, script_update
from secrets_vault.models import Secret
from teckochecker.errors import Conflict, DomainError, ValidationFailed

# --- import: the report -----------------------------------------------------------------------

CREATE, UPDATE, UNCHANGED, SKIP = "create", "update", "unchanged", "skip"


@dataclass
class ItemResult:
    kind: str  # "script" or "job"
    key: str  # its slug or name
    action: str  # create, update, unchanged or skip
    fields: list[str] = field(default_factory=list)  # what an update changes
    note: str = ""

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "key": self.key,
            "action": self.action,
            "fields": self.fields,
            "note": self.note,
        }


@dataclass
class ImportReport:
    dry_run: bool
    items: list[ItemResult]

    @property
    def changed(self) -> bool:
        return any(item.action in (CREATE, UPDATE) for item in self.items)

    def counts(self) -> dict[str, int]:
        return {a: sum(1 for i in self.items if i.action == a) for a in (CREATE, UPDATE, UNCHANGED, SKIP)}

    def summary(self) -> str:
        c = self.counts()
        rest = f"{c[UNCHANGED]} unchanged" + (f", {c[SKIP]} skipped" if c[SKIP] else "")
        if not self.changed:
            if c[SKIP]:
                return f"Nothing to change: {rest}."
            return "Nothing to change: everything in the bundle is already here, as it is."
        if self.dry_run:
            return f"Dry run, nothing written: would create {c[CREATE]}, would update {c[UPDATE]}, {rest}."
        return f"Created {c[CREATE]}, updated {c[UPDATE]}, {rest}."

    def as_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "changed": self.changed,
            "summary": self.summary(),
            "counts": self.counts(),
            "items": [item.as_dict() for item in self.items],
        }


# --- import: checking the structure --------------------------------------------------------------


def _flat(entry: dict) -> dict:
    """Nested objects one level down become `parent.key`, so a change names its exact field."""
    out = {}
    for key, value in entry.items():
        if isinstance(value, dict):
            out.update({f"{key}.{sub}": v for sub, v in value.items()})
        else:
            out[key] = value
    return out


def _differences(before: dict, after: dict) -> list[str]:
    flat_before, flat_after = _flat(before), _flat(after)
    return sorted(
        k for k in flat_before.keys() | flat_after.keys() if flat_before.get(k) != flat_after.get(k)
    )


def _same(key: str, wanted: object, current: object) -> bool:
    if key == "env" and isinstance(wanted, list) and all(isinstance(v, dict) for v in wanted):
        wanted = sorted(wanted, key=lambda var: str(var.get("name")))
    return wanted == current


def _import_script(item: dict, author: str) -> ItemResult:
    slug = item["slug"].strip()
    fields = {k: v for k, v in item.items() if k != "slug"}
    existing = scripts_query().filter(slug=slug).first()
    if existing is None:
        if "name" not in fields:
            raise ValidationFailed.from_errors({"name": ["A script that is new here needs a name."]})
        script_create(slug=slug, author=author, **fields)
        return ItemResult("script", slug, CREATE)
    before = script_entry(existing)
    changes = {k: v for k, v in fields.items() if not _same(k, v, before[k])}
    if not changes:
        return ItemResult("script", slug, UNCHANGED)
    script_update(script=existing, author=author, **changes)
    changed = _differences(before, script_entry(scripts_query().get(pk=existing.pk)))
    return ItemResult("script", slug, UPDATE if changed else UNCHANGED, changed)


def _secret_id(name: object) -> int | None:
    if not isinstance(name, str):
        return None
    return Secret.objects.defer("value").values_list("pk", flat=True).get(name=name.strip())


def _script_id(slug: object) -> int:
    script = Script.objects.filter(slug=str(slug).strip()).first()
    if script is None:
        raise ValidationFailed.from_errors(
            {"action_script_id": [f"Script '{slug}' is neither in this bundle nor here."]}
        )
    return script.pk


def _job_create(name: str, item: dict) -> ItemResult:
    action, notify = item["action"], item.get("notify") or {}
    kwargs: dict[str, Any] = {
        "name": name,
        "batch_ids": item.get("batch_ids"),
        "openai_secret_id": _secret_id(item["openai_secret"]),
        "poll_interval_seconds": item.get("poll_interval_seconds"),
        "action_type": action["type"],
        "notify_emails": notify.get("emails", ""),
        "notify_webhook_url": notify.get("webhook_url", ""),
    }
    if action["type"] == ActionType.KEBOOLA:
        kwargs.update(
            keboola_secret_id=_secret_id(action["secret"]),
            keboola_stack_url=action.get("stack_url", ""),
            keboola_component_id=action.get("component_id", ""),
            keboola_configuration_id=action.get("configuration_id", ""),
        )
    elif action["type"] == ActionType.WEBHOOK:
        kwargs.update(action_url=action.get("url", ""), action_secret_id=_secret_id(action.get("secret")))
    else:
        kwargs["action_script_id"] = _script_id(action["script"])
    job = job_create(**kwargs)
    if item.get("paused"):
        job_pause(job=job)
    return ItemResult("job", name, CREATE)


def _job_update(job: PollingJob, item: dict) -> ItemResult:
    before = job_entry(job)
    wanted = _flat({k: v for k, v in item.items() if k != "name"})
    if isinstance(wanted.get("batch_ids"), list):
        wanted["batch_ids"] = sorted(wanted["batch_ids"], key=str)
    current = _flat(before)
    fixed = [f for f in FIXED_JOB_FIELDS if f in wanted and wanted[f] != current.get(f)]
    if fixed:
        raise ValidationFailed.from_errors(
            {
                f: [
                    f"Differs from the existing job #{job.pk} ({current.get(f)!r} there). A job's batches, "
                    f"secrets and action type cannot change once it exists: delete job #{job.pk} first, "
                    "or give this job another name in the bundle."
                ]
                for f in fixed
            }
        )
    updatable = {
        "poll_interval_seconds": "poll_interval_seconds",
        "notify.emails": "notify_emails",
        "notify.webhook_url": "notify_webhook_url",
        "action.stack_url": "keboola_stack_url",
        "action.component_id": "keboola_component_id",
        "action.configuration_id": "keboola_configuration_id",
        "action.url": "action_url",
    }
    changes = {
        arg: wanted[key]
        for key, arg in updatable.items()
        if key in wanted and wanted[key] != current.get(key)
    }
    pause = "paused" in wanted and wanted["paused"] != current["paused"]
    if not changes and not pause:
        return ItemResult("job", job.name, UNCHANGED)
    if changes:
        job = job_update(job=job, **changes)
    if pause:
        job = job_pause(job=job) if wanted["paused"] else job_resume(job=job)
    changed = _differences(before, job_entry(jobs_query().get(pk=job.pk)))
    return ItemResult("job", job.name, UPDATE if changed else UNCHANGED, changed)


def _import_job(item: dict, author: str) -> ItemResult:
    name = item["name"].strip()
    candidates = list(jobs_query().filter(name=name).order_by("-created_at", "-id"))
    live = [j for j in candidates if j.status in LIVE_STATUSES]
    if len(live) > 1:
        ids = ", ".join(f"#{j.pk}" for j in live)
        raise Conflict(
            f"Active or paused jobs {ids} are all named '{name}'; rename all but one so the bundle names one job."
        )
    if live:
        return _job_update(live[0], item)
    if candidates:
        newest = candidates[0]
        return ItemResult(
            "job",
            name,
            SKIP,
            note=(
                f"Job #{newest.pk} of this name is {newest.status}; an import never restarts a finished "
                "job (give the bundle's job a new name to start a new one)."
            ),
        )
    return _job_create(name, item)


def _check_script_reference(label: str, item: dict, errors: Problems) -> None:
    """A job whose script action names a script that failed in this bundle fails with a pointer
    to that script's errors, instead of a second, puzzling "not found"."""
    action = item.get("action")
    script = action.get("script") if isinstance(action, dict) else None
    if isinstance(script, str) and f"scripts[{script.strip()}]" in errors.failed:
        errors.add(
            f"{label}.action.script",
            f"Script '{script.strip()}' has errors in this bundle (see scripts[{script.strip()}]).",
            item=label,
        )


# Any fixed number: the key of the PostgreSQL advisory lock that lets one import run at a time.
IMPORT_LOCK_KEY = 0x7EC0B0D1


def _one_import_at_a_time() -> None:
    """Job names are not unique in the database, so two imports at once could both find no job
    named X and both create one. On PostgreSQL a transaction-scoped advisory lock makes the
    second wait; SQLite transactions here are IMMEDIATE, which already serialises writers."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [IMPORT_LOCK_KEY])


def bundle_import(*, bundle: object, dry_run: bool = False, author: str = "") -> ImportReport:
    """Apply `bundle` completely or not at all (see the module docstring).

    Raises BundleInvalid naming every bad place (`scripts[slug].field`, `jobs[name].field`).
    With `dry_run` the same work is done and rolled back: the report says what would change.
    `author` is who a script's new code version is saved by.
    """
    errors = Problems()
    scripts, jobs = bundle_check(bundle, errors)
    results: list[ItemResult] = []
    with transaction.atomic():
        _one_import_at_a_time()
        steps = [
            (label, item, _import_script, {})
            for label, item in sorted(scripts, key=lambda p: p[1]["slug"].strip())
        ]
        steps += [
            (label, item, _import_job, JOB_FIELD_PATHS)
            for label, item in sorted(jobs, key=lambda p: p[1]["name"].strip())
        ]
        for label, item, apply, paths in steps:
            _check_script_reference(label, item, errors)
            if label in errors.failed:
                continue
            try:
                with transaction.atomic():
                    results.append(apply(item, author))
            except DomainError as exc:
                errors.add_service(label, exc, paths)
        if errors.by_place:
            raise BundleInvalid.from_errors(errors.by_place)
        if dry_run:
            transaction.set_rollback(True)
    return ImportReport(dry_run=dry_run, items=results)
