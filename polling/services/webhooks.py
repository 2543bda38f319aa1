"""Receiving OpenAI's batch webhooks: verify first, ignore replays, ask for a confirmation.

Verification (`openai_webhook_verify`) comes before any database work: the signing secrets are
kept in memory for SECRETS_TTL_SECONDS, so a valid delivery costs no query to verify and a flood
of invalid ones costs at most one reload of the secrets every SECRETS_RELOAD_SECONDS. Only what
fails verification is rate-limited (the view's throttle); OpenAI's own bursts never are.

An event never completes a job by itself: it marks the batch as announced and asks for a
confirmation (services/confirm.py), which reads the batch's real state from OpenAI. A forged or
replayed event can only cause one early read.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from polling.integrations.openai_webhooks import BATCH_WEBHOOK_EVENTS, WebhookEvent, unwrap_webhook
from polling.models import WebhookDelivery
from polling.services.confirm import batches_mark, confirm_request
from secrets_vault.fields import UNREADABLE
from secrets_vault.models import Secret, SecretType
from teckochecker.errors import DomainError
from teckochecker.integrations import Rejected

# Deliveries are remembered this long for spotting replays; an older replay fails the
# signature's five-minute tolerance anyway.
DELIVERIES_KEPT = timedelta(days=1)
# A new, changed or deleted webhook secret is in force after at most this long.
SECRETS_TTL_SECONDS = 30.0
# A delivery that fails with the cached secrets reloads them (a secret just added), at most this
# often: invalid deliveries must not turn into a query each.
SECRETS_RELOAD_SECONDS = 5.0


class WebhookRejected(DomainError):
    status_code = 400


@dataclass(frozen=True)
class WebhookOutcome:
    accepted: bool
    replay: bool = False
    event_type: str = ""
    jobs_checked: list[int] | None = None


class _SecretCache:
    """The readable `openai_webhook` secrets, loaded at most every few seconds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: list[str] = []
        self._loaded_at: float | None = None

    def get(self, *, fresher_than: float) -> tuple[list[str], bool]:
        """The secrets, reloaded when older than `fresher_than` seconds; and whether they were."""
        with self._lock:
            now = time.monotonic()
            if self._loaded_at is not None and now - self._loaded_at < fresher_than:
                return self._values, False
            self._values = [
                v
                for v in Secret.objects.filter(type=SecretType.OPENAI_WEBHOOK).values_list("value", flat=True)
                if v is not UNREADABLE
            ]
            self._loaded_at = now
            return self._values, True

    def clear(self) -> None:
        with self._lock:
            self._loaded_at = None


webhook_secrets = _SecretCache()


def webhook_secrets_changed(sender, instance, **kwargs) -> None:
    """A webhook secret saved or deleted in this process is in force at once (post_save and
    post_delete of Secret, connected in polling.apps); other processes follow within the TTL."""
    if instance.type == SecretType.OPENAI_WEBHOOK:
        webhook_secrets.clear()


def openai_webhook_verify(*, payload: bytes, headers: dict[str, str]) -> WebhookEvent:
    """The delivery's event if its Standard Webhooks signature verifies with a
    configured secret; raises WebhookRejected otherwise. Touches the database only to (re)load
    the secrets."""
    secrets, fresh = webhook_secrets.get(fresher_than=SECRETS_TTL_SECONDS)
    while True:
        if not secrets:
            message = "No OpenAI webhook secret is configured (add a secret of type openai_webhook)."
        else:
            try:
                event = unwrap_webhook(payload=payload, headers=headers, secrets=secrets)
            except Rejected as exc:
                message = exc.message
            else:
                return event
        if fresh:
            raise WebhookRejected(message)
        secrets, fresh = webhook_secrets.get(fresher_than=SECRETS_RELOAD_SECONDS)
        if not fresh:
            raise WebhookRejected(message)


def openai_webhook_accept(*, event: WebhookEvent) -> WebhookOutcome:
    """Act on a verified event: a replayed `webhook-id` does nothing; a terminal `batch.*`
    event announces its batch to the active jobs watching it (services/confirm.py)."""
    announces = event.event_type in BATCH_WEBHOOK_EVENTS and bool(event.batch_id)
    now = timezone.now()
    try:
        # The delivery's row and its batch's marks commit together: one commit less per event,
        # and a delivery whose marks failed is not stored, so OpenAI's retry of it is acted on
        # instead of being taken for a replay. The confirmations are asked for after the commit.
        with transaction.atomic():
            WebhookDelivery.objects.create(
                webhook_id=event.webhook_id[:255],
                event_type=event.event_type[:64],
                batch_id=event.batch_id[:255],
            )
            job_ids = batches_mark(batch_id=event.batch_id, now=now) if announces else []
    except IntegrityError:
        return WebhookOutcome(accepted=True, replay=True, event_type=event.event_type)
    for job_id in job_ids:
        confirm_request(job_id=job_id, now=now)
    return WebhookOutcome(accepted=True, event_type=event.event_type, jobs_checked=job_ids)


def webhook_deliveries_prune() -> int:
    """Forget deliveries older than DELIVERIES_KEPT (a burst leaves one row per event); returns
    how many were deleted."""
    deleted, _ = WebhookDelivery.objects.filter(received_at__lt=timezone.now() - DELIVERIES_KEPT).delete()
    return deleted
