"""Receiving OpenAI's batch webhooks: verify, ignore replays, and check the affected jobs now.

The event only says which batch changed. It never completes a job by itself: the poll it
triggers reads the batch's real state from OpenAI, so even a valid-looking forged event can
only cause an early check.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction

from polling.models import JobStatus, PollingJob, WebhookDelivery
from polling.services.schedules import enqueue_poll
from secrets_vault.fields import UNREADABLE
from secrets_vault.models import Secret, SecretType
from teckochecker.errors import DomainError
from teckochecker.integrations import Rejected


class WebhookRejected(DomainError):
    status_code = 400


@dataclass(frozen=True)
class WebhookOutcome:
    accepted: bool
    replay: bool = False
    event_type: str = ""
    jobs_checked: list[int] | None = None


def openai_webhook_receive(*, payload: bytes, headers: dict[str, str]) -> WebhookOutcome:
    # Imported here: the OpenAI SDK costs ~30 MB and ~1.5 s, and the web process needs it only
    # when a webhook arrives.
    from polling.integrations import openai as openai_api

    secrets = [
        v
        for v in Secret.objects.filter(type=SecretType.OPENAI_WEBHOOK).values_list("value", flat=True)
        if v is not UNREADABLE
    ]
    if not secrets:
        raise WebhookRejected("No OpenAI webhook secret is configured (add a secret of type openai_webhook).")
    try:
        event = openai_api.unwrap_webhook(payload=payload, headers=headers, secrets=secrets)
    except Rejected as exc:
        raise WebhookRejected(exc.message) from None
    if not event.webhook_id:
        raise WebhookRejected("The webhook-id header is missing.")
    try:
        with transaction.atomic():
            WebhookDelivery.objects.create(
                webhook_id=event.webhook_id[:255],
                event_type=event.event_type[:64],
                batch_id=event.batch_id[:255],
            )
    except IntegrityError:
        return WebhookOutcome(accepted=True, replay=True, event_type=event.event_type)
    if event.event_type not in openai_api.BATCH_WEBHOOK_EVENTS or not event.batch_id:
        return WebhookOutcome(accepted=True, event_type=event.event_type, jobs_checked=[])
    job_ids = list(
        PollingJob.objects.filter(status=JobStatus.ACTIVE, batches__batch_id=event.batch_id)
        .values_list("id", flat=True)
        .distinct()
    )
    with transaction.atomic():
        for job_id in job_ids:
            enqueue_poll(job_id=job_id, force=True)
    return WebhookOutcome(accepted=True, event_type=event.event_type, jobs_checked=job_ids)
