"""Scripts' answer to the vault's question "who uses this secret?" (`secrets_vault.usage`).

A script whose environment variable names a secret blocks deleting it (the foreign key is
PROTECT too): the script would otherwise fail at its next run.
"""

from __future__ import annotations

from collections.abc import Collection

from django.db.models import Count, Expression

from scripts.models import ScriptEnvVar
from secrets_vault.usage import SecretUse, SecretUsers


def scripts_using(secret_ids: Collection[int]) -> dict[int, SecretUse]:
    """The scripts (by safe name) using each of `secret_ids`, in one query."""
    by_secret: dict[int, set[str]] = {}
    wanted = set(secret_ids)
    if wanted:
        rows = ScriptEnvVar.objects.filter(secret_id__in=wanted).values_list("secret_id", "script__slug")
        for secret_id, slug in rows:
            by_secret.setdefault(secret_id, set()).add(slug)
    return {secret_id: _use(sorted(slugs)) for secret_id, slugs in by_secret.items()}


def _use(slugs: list[str]) -> SecretUse:
    noun = "script" if len(slugs) == 1 else "scripts"
    return SecretUse(
        users=list(slugs),
        description=f"{noun} {', '.join(slugs)}",
        advice="remove the variable from those scripts first",
    )


def scripts_using_count() -> Expression:
    return Count("script_env_vars__script", distinct=True)


USERS = SecretUsers(name="scripts", title="Scripts using it", find=scripts_using, count=scripts_using_count)
