"""Creating, changing and deleting scripts (not running them: runs.py)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import IntegrityError, transaction

from scripts import validation as v
from scripts.models import OverlapPolicy, Script, ScriptEnvVar, ScriptVersion
from scripts.services.exceptions import ScriptNotFound, ScriptStateConflict
from secrets_vault.models import Secret
from teckochecker.errors import ValidationFailed, get_by_id

logger = logging.getLogger("teckochecker.scripts")

# What `script_update` accepts (the API's PUT/PATCH fields; `slug` never changes).
UPDATABLE_FIELDS = (
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
    "url_trigger",
    "url_trigger_get",
    "env",
    "schedule",
    "overlap",
    "notify",
)


def script_get(*, script_id: int, for_update: bool = False) -> Script:
    return get_by_id(
        Script.objects.all(), script_id, not_found=ScriptNotFound, label="Script", for_update=for_update
    )


def script_get_by_ref(*, ref: str | int) -> Script:
    """A script by id, or by slug (what the CLI accepts: `script show hello-world`)."""
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        return script_get(script_id=int(ref))
    script = Script.objects.filter(slug=str(ref).strip()).first()
    if script is None:
        raise ScriptNotFound(f"Script '{str(ref)[:100]}' not found.")
    return script


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    """Every given field checked together; one error lists every bad field."""

    def limit(field: str):
        low, high, unit = v.LIMITS[field]
        return lambda: v.clean_limit(field, data[field], low=low, high=high, unit=unit)

    checks = {
        "name": lambda: v.clean_script_name(data["name"]),
        "folder": lambda: v.clean_folder(data["folder"]),
        "code": lambda: v.clean_code(data["code"]),
        "requirements": lambda: v.clean_requirements(data["requirements"]),
        "python_version": lambda: v.clean_python_version(data["python_version"]),
        "timeout_seconds": limit("timeout_seconds"),
        "memory_mb": limit("memory_mb"),
        "cpu_seconds": limit("cpu_seconds"),
        "network": lambda: v.clean_bool("network", data["network"]),
        "enabled": lambda: v.clean_bool("enabled", data["enabled"]),
        "url_trigger": lambda: v.clean_bool("url_trigger", data["url_trigger"]),
        "url_trigger_get": lambda: v.clean_bool("url_trigger_get", data["url_trigger_get"]),
        "env": lambda: _resolve_env(v.clean_env(data["env"])),
        "schedule": lambda: v.clean_schedule(data["schedule"]),
        "overlap": lambda: v.clean_overlap(data["overlap"]),
        "notify": lambda: v.clean_notify(data["notify"]),
        "slug": lambda: _free_slug(v.clean_slug(data["slug"])),
    }
    cleaned, errors, syntax_error = {}, {}, None
    for field, check in checks.items():
        if field not in data:
            continue
        try:
            cleaned[field] = check()
        except v.CodeSyntaxError as exc:
            syntax_error = exc
        except ValidationFailed as exc:
            for key, messages in exc.errors.items():
                errors.setdefault(key, []).extend(messages)
    if syntax_error is not None:
        if errors:  # keep the line for the editor, and still name every other bad field
            syntax_error.errors.update(errors)
        raise syntax_error
    if errors:
        raise ValidationFailed.from_errors(errors)
    # Nested choices become model fields: schedule -> schedule_*, notify -> notify_*.
    cleaned.update(cleaned.pop("schedule", {}))
    cleaned.update(cleaned.pop("notify", {}))
    return cleaned


def _resolve_env(items: list[dict]) -> list[ScriptEnvVar]:
    """Unsaved rows; a secret is found by name (never read here)."""
    names = {item["secret"] for item in items if "secret" in item}
    secrets = {s.name: s for s in Secret.objects.defer("value").filter(name__in=names)}
    rows = []
    for item in items:
        if "secret" in item:
            secret = secrets.get(item["secret"])
            if secret is None:
                raise ValidationFailed.from_errors(
                    {"env": [f"Variable '{item['name']}': secret '{item['secret'][:100]}' not found."]}
                )
            rows.append(ScriptEnvVar(name=item["name"], secret=secret))
        else:
            rows.append(ScriptEnvVar(name=item["name"], value=item["value"]))
    return rows


def _slug_taken(slug: str) -> ValidationFailed:
    return ValidationFailed.from_errors({"slug": [f"The safe name '{slug}' is taken by another script."]})


def _free_slug(slug: str) -> str:
    if Script.objects.filter(slug=slug).exists():
        raise _slug_taken(slug)
    return slug


def _unique_slug(name: str, *, taken: set[str] | None = None) -> str:
    base = v.slugify_name(name)
    taken = taken if taken is not None else set()
    existing = taken | set(
        Script.objects.filter(slug__regex=rf"^{base}(-[0-9]+)?$").values_list("slug", flat=True)
    )
    if base not in existing:
        return base
    n = 2
    while f"{base}-{n}" in existing:
        n += 1
    return f"{base}-{n}"


def _save_env(script: Script, rows: list[ScriptEnvVar]) -> None:
    ScriptEnvVar.objects.filter(script=script).delete()
    for row in rows:
        row.script = script
    ScriptEnvVar.objects.bulk_create(rows)


def script_create(
    *,
    name: str,
    folder: str = "",
    code: str = "",
    requirements: str = "",
    python_version: str | None = None,
    timeout_seconds: int | None = None,
    memory_mb: int | None = None,
    cpu_seconds: int | None = None,
    network: bool = False,
    enabled: bool = True,
    url_trigger: bool = False,
    url_trigger_get: bool = False,
    env: list[dict] | None = None,
    schedule: dict | None = None,
    overlap: str = OverlapPolicy.SKIP,
    notify: dict | None = None,
    author: str = "",
    slug: str | None = None,
) -> Script:
    """Validate everything, then store the script (its version 1, saved by `author`), schedule
    it and start building its environment.

    `slug` keeps a given safe name (an imported bundle names its scripts by it); without one it
    is made from the name. Raises ValidationFailed (CodeSyntaxError for code that does not
    compile, with its line; a given slug that is malformed or taken).
    """
    defaults = v.limit_defaults()
    data = {
        "name": name,
        "folder": folder,
        "code": code,
        "requirements": requirements,
        "python_version": python_version if python_version is not None else v.default_python_version(),
        "timeout_seconds": timeout_seconds if timeout_seconds is not None else defaults["timeout_seconds"],
        "memory_mb": memory_mb if memory_mb is not None else defaults["memory_mb"],
        "cpu_seconds": cpu_seconds if cpu_seconds is not None else defaults["cpu_seconds"],
        "network": network,
        "enabled": enabled,
        "url_trigger": url_trigger,
        "url_trigger_get": url_trigger_get,
        "env": env or [],
        "schedule": schedule if schedule is not None else {"type": "manual"},
        "overlap": overlap,
        "notify": notify or {},
    }
    if slug is not None:
        data["slug"] = slug
    cleaned = _clean(data)
    env_rows = cleaned.pop("env")
    wanted_slug = cleaned.pop("slug", None)
    from scripts.services.environments import environment_request_build
    from scripts.services.schedules import schedule_sync
    from scripts.services.versions import version_record

    taken: set[str] = set()
    for _attempt in range(5):
        slug = wanted_slug or _unique_slug(cleaned["name"], taken=taken)
        try:
            with transaction.atomic():
                script = Script.objects.create(slug=slug, **cleaned)
                _save_env(script, env_rows)
                version_record(script=script, previous=None, author=author)
                schedule_sync(script=script)
                environment_request_build(script=script)
        except IntegrityError:  # another create took the slug between our read and write
            if wanted_slug:
                raise _slug_taken(wanted_slug) from None
            taken.add(slug)
            continue
        logger.info("script %s (%s) created", script.pk, script.slug)
        return script
    raise ValidationFailed.from_errors({"name": ["Could not find a free safe name; try another name."]})


def script_update(
    *,
    script: Script,
    author: str = "",
    base_version: int | None = None,
    restored_from: int | None = None,
    **changes: Any,
) -> Script:
    """Change any of UPDATABLE_FIELDS. A new Python version or new requirements rebuild the
    environment; schedule, enabled and overlap changes reach beat at once.

    A change of the code or requirements is kept as the script's next version, saved by
    `author` (`restored_from`: the version a restore brings back, see versions.version_restore).
    With `base_version` (the version the edit started from) such a change is refused with
    VersionConflict when a newer version was saved meanwhile.
    """
    from scripts.services.versions import VERSIONED, clean_base_version, version_check_base, version_record

    base_version = clean_base_version(base_version)
    unknown = set(changes) - set(UPDATABLE_FIELDS)
    if unknown:
        raise ValidationFailed.from_errors({f: ["This field cannot be changed."] for f in sorted(unknown)})
    nulls = {f: ["This field may not be null."] for f, value in changes.items() if value is None}
    if nulls:
        raise ValidationFailed.from_errors(nulls)
    cleaned = _clean(changes)
    if not cleaned:
        return script
    env_rows = cleaned.pop("env", None)
    from scripts.services.environments import environment_needs_build, environment_request_build
    from scripts.services.schedules import schedule_sync

    with transaction.atomic():
        locked = script_get(script_id=script.pk, for_update=True)
        version_check_base(script=locked, base_version=base_version, changes=cleaned)
        previous = ScriptVersion(code=locked.code, requirements=locked.requirements)
        for field, value in cleaned.items():
            setattr(locked, field, value)
        locked.save()
        if any(getattr(locked, f) != getattr(previous, f) for f in VERSIONED):
            version_record(script=locked, previous=previous, author=author, restored_from=restored_from)
        if env_rows is not None:
            _save_env(locked, env_rows)
        schedule_sync(script=locked)
        if environment_needs_build(script=locked):
            environment_request_build(script=locked)
    return locked


def script_delete(*, script: Script) -> None:
    """Delete the script with its runs, schedule and environment; nothing of it keeps running.

    A running run's worker sees its run gone at its next check (well under a second) and ends
    the script's whole process group.
    """
    from polling.models import JobStatus
    from scripts.services.environments import environment_remove_later
    from scripts.services.schedules import schedule_remove

    with transaction.atomic():
        locked = script_get(script_id=script.pk, for_update=True)
        job_ids = sorted(
            locked.polling_jobs.filter(status__in=[JobStatus.ACTIVE, JobStatus.PAUSED]).values_list(
                "pk", flat=True
            )
        )
        if job_ids:
            noun = "job" if len(job_ids) == 1 else "jobs"
            raise ScriptStateConflict(
                f"Script '{locked.name}' is run by active or paused polling {noun} "
                f"{', '.join(str(i) for i in job_ids)}; delete or finish those jobs first."
            )
        schedule_remove(script=locked)
        environment_remove_later(script=locked)
        locked.delete()  # its runs go with it
    logger.info("script %s (%s) deleted", script.pk, script.slug)
