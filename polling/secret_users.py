"""Polling's answer to the vault's question "who uses this secret?" (`secrets_vault.usage`).

Active and paused jobs block deleting their OpenAI or Keboola secret; finished jobs keep their
history and let it go (the foreign key is SET_NULL).
"""

from __future__ import annotations

from collections.abc import Collection

from django.db.models import Count, Expression, Q

from polling.models import JobStatus, PollingJob
from secrets_vault.usage import SecretUse, SecretUsers

IN_USE = [JobStatus.ACTIVE, JobStatus.PAUSED]


def jobs_using(secret_ids: Collection[int]) -> dict[int, SecretUse]:
    """The active or paused jobs using each of `secret_ids`, in one query."""
    by_secret: dict[int, set[int]] = {}
    wanted = set(secret_ids)
    if wanted:
        rows = (
            PollingJob.objects.filter(status__in=IN_USE)
            .filter(Q(openai_secret_id__in=wanted) | Q(keboola_secret_id__in=wanted))
            .values_list("id", "openai_secret_id", "keboola_secret_id")
        )
        for job_id, *used in rows:
            for secret_id in set(used) & wanted:
                by_secret.setdefault(secret_id, set()).add(job_id)
    return {secret_id: _use(sorted(job_ids)) for secret_id, job_ids in by_secret.items()}


def _use(job_ids: list[int]) -> SecretUse:
    noun = "job" if len(job_ids) == 1 else "jobs"
    return SecretUse(
        users=list(job_ids),
        description=f"active or paused {noun} {', '.join(str(i) for i in job_ids)}",
        advice="delete or finish those jobs first",
    )


def jobs_using_count() -> Expression:
    """Annotates `Secret` rows with how many active or paused jobs use them (through either field)."""
    return Count("openai_jobs", filter=Q(openai_jobs__status__in=IN_USE), distinct=True) + Count(
        "keboola_jobs", filter=Q(keboola_jobs__status__in=IN_USE), distinct=True
    )


USERS = SecretUsers(name="jobs", title="Active/paused jobs using it", find=jobs_using, count=jobs_using_count)
