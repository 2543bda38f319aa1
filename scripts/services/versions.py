"""Versions of a script's code and requirements: one per save that changes them, compared and
restored here. `script_update` (scripts.py), the one save path, records them and refuses a save
that started from an older version than the newest (optimistic concurrency)."""

from __future__ import annotations

import difflib
from datetime import UTC

from django.conf import settings
from django.db.models import QuerySet

from scripts.models import Script, ScriptVersion
from scripts.services.exceptions import VersionConflict, VersionNotFound
from teckochecker.errors import ValidationFailed


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _count(old: str, new: str) -> tuple[int, int]:
    added = removed = 0
    for line in difflib.unified_diff(_lines(old), _lines(new), n=0):
        if line.startswith("+") and not line.startswith("+++"):
            added += 1
        elif line.startswith("-") and not line.startswith("---"):
            removed += 1
    return added, removed


def diff_stat(*, old: ScriptVersion | Script | None, new: ScriptVersion | Script) -> tuple[int, int]:
    """(lines added, lines removed) from `old` to `new`, code and requirements together."""
    code_added, code_removed = _count(old.code if old else "", new.code)
    req_added, req_removed = _count(old.requirements if old else "", new.requirements)
    return code_added + req_added, code_removed + req_removed


def clean_base_version(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationFailed.from_errors(
            {"base_version": ["base_version must be a whole number: the version your edit started from."]}
        )
    return value


def version_check_base(*, script: Script, base_version: int | None, changes: dict) -> None:
    """Refuse (VersionConflict) a change of code or requirements that started from an older
    version than the newest. `script` is the locked row; a save without `base_version`, or one
    that changes neither, is not checked (settings are last-writer-wins, field by field)."""
    if base_version is None or base_version == script.version:
        return
    if all(changes.get(field, getattr(script, field)) == getattr(script, field) for field in VERSIONED):
        return
    newest = ScriptVersion.objects.filter(script=script, number=script.version).first()
    if newest is not None:
        when = newest.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        who = newest.author or "someone"
        what = f"version {newest.number} was saved by {who} at {when}"
    else:
        what = f"the newest version is {script.version}"
    raise VersionConflict(
        f"Script '{script.name}' changed after version {base_version}, which your edit started from: "
        f"{what}. Nothing was saved; reload the script and apply your edit again.",
        extra={
            "current_version": script.version,
            "base_version": base_version,
            "saved_by": newest.author if newest else "",
            "saved_at": newest.created_at.isoformat() if newest else None,
        },
    )


# The fields a version holds; a save that changes one of them makes a new version.
VERSIONED = ("code", "requirements")


def version_record(
    *, script: Script, previous: ScriptVersion | Script | None, author: str, restored_from: int | None = None
) -> ScriptVersion:
    """Store `script`'s code and requirements (the locked row, already saved) as its next
    version and prune the oldest beyond SCRIPTS_VERSIONS_KEEP. Call inside the save's transaction."""
    added, removed = diff_stat(old=previous, new=script)
    number = script.version + 1
    version = ScriptVersion.objects.create(
        script=script,
        number=number,
        code=script.code,
        requirements=script.requirements,
        author=author[:150],
        added=added,
        removed=removed,
        restored_from=restored_from,
    )
    Script.objects.filter(pk=script.pk).update(version=number)
    script.version = number
    ScriptVersion.objects.filter(script=script, number__lte=number - settings.SCRIPTS_VERSIONS_KEEP).delete()
    return version


def version_list(*, script: Script, limit: int | None = None, offset: int = 0) -> tuple[QuerySet, int]:
    """Newest first, without the code (a list never needs it). Returns (page, total)."""
    versions = ScriptVersion.objects.filter(script=script).defer("code", "requirements")
    total = versions.count()
    page = versions[offset : offset + limit] if limit is not None else versions[offset:]
    return page, total


def version_get(*, script: Script, number: int) -> ScriptVersion:
    version = ScriptVersion.objects.filter(script=script, number=number).first()
    if version is None:
        kept = settings.SCRIPTS_VERSIONS_KEEP
        hint = (
            f" (only the newest {kept} are kept)"
            if 0 < number <= script.version
            else f" (the newest is {script.version})"
        )
        raise VersionNotFound(f"Script '{script.name}' has no version {number}{hint}.")
    return version


def _unified(old: str, new: str, *, what: str, old_number: int, new_number: int) -> str:
    return "".join(
        difflib.unified_diff(
            _lines(old),
            _lines(new),
            fromfile=f"{what} (version {old_number})",
            tofile=f"{what} (version {new_number})",
        )
    )


def version_diff(*, script: Script, old: int, new: int) -> dict:
    """What changed from version `old` to version `new` (either may be the newer): a unified
    diff of the code and one of the requirements, and the lines added and removed."""
    a, b = version_get(script=script, number=old), version_get(script=script, number=new)
    code = _unified(a.code, b.code, what="code", old_number=old, new_number=new)
    requirements = _unified(
        a.requirements, b.requirements, what="requirements", old_number=old, new_number=new
    )
    added, removed = diff_stat(old=a, new=b)
    return {
        "from": old,
        "to": new,
        "added": added,
        "removed": removed,
        "code_diff": code,
        "requirements_diff": requirements,
    }


def version_restore(*, script: Script, number: int, author: str = "") -> tuple[Script, bool]:
    """Make version `number`'s code and requirements current again, through the one save path
    (validated; new requirements rebuild the environment). The restore is a new version that
    says where it came from. Returns (script, changed): nothing changes when they are current."""
    from scripts.services.scripts import script_update

    version = version_get(script=script, number=number)
    before = script.version
    updated = script_update(
        script=script,
        author=author,
        restored_from=number,
        code=version.code,
        requirements=version.requirements,
    )
    return updated, updated.version != before
