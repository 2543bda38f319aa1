from __future__ import annotations

from django.db.models import Q

from polling.models import JobStatus
from secrets_vault.fields import UNREADABLE
from secrets_vault.models import Secret

IN_USE = [JobStatus.ACTIVE, JobStatus.PAUSED]


def secret_list() -> list[Secret]:
    """All secrets, newest first, each with `used_by` (ids of active/paused jobs using it).

    Values are deferred: listing never decrypts anything.
    """
    secrets = list(Secret.objects.defer("value").order_by("-created_at", "-id"))
    _attach_usage(secrets)
    return secrets


def secret_detail(secret: Secret) -> Secret:
    _attach_usage([secret])
    return secret


def _attach_usage(secrets: list[Secret]) -> None:
    from polling.models import PollingJob

    by_secret: dict[int, set[int]] = {s.pk: set() for s in secrets}
    if by_secret:
        rows = (
            PollingJob.objects.filter(status__in=IN_USE)
            .filter(Q(openai_secret_id__in=by_secret) | Q(keboola_secret_id__in=by_secret))
            .values_list("id", "openai_secret_id", "keboola_secret_id")
        )
        for job_id, openai_id, keboola_id in rows:
            for sid in (openai_id, keboola_id):
                if sid in by_secret:
                    by_secret[sid].add(job_id)
    for s in secrets:
        s.used_by = sorted(by_secret[s.pk])


def unreadable_secret_ids() -> set[int]:
    """Ids of secrets that none of the configured keys can decrypt."""
    return {pk for pk, value in Secret.objects.values_list("id", "value") if value is UNREADABLE}
