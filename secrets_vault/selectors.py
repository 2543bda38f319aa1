from __future__ import annotations

from secrets_vault.fields import UNREADABLE
from secrets_vault.models import Secret
from secrets_vault.usage import secret_uses


def secret_list() -> list[Secret]:
    """All secrets, newest first, each with `used_by` (who uses it: for jobs, the ids of active
    or paused jobs; see `secrets_vault.usage`).

    Values are deferred: listing never decrypts anything.
    """
    secrets = list(Secret.objects.defer("value").order_by("-created_at", "-id"))
    _attach_usage(secrets)
    return secrets


def secret_detail(secret: Secret) -> Secret:
    _attach_usage([secret])
    return secret


def _attach_usage(secrets: list[Secret]) -> None:
    uses = secret_uses([s.pk for s in secrets])
    for s in secrets:
        s.used_by = [user for use in uses[s.pk] for user in use.users]


def unreadable_secret_ids() -> set[int]:
    """Ids of secrets that none of the configured keys can decrypt."""
    return {pk for pk, value in Secret.objects.values_list("id", "value") if value is UNREADABLE}
