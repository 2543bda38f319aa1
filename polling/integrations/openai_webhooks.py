"""OpenAI's incoming webhooks: verify a Standard Webhooks delivery and read its event.

Apart from `openai.py` on purpose: importing the SDK costs the web process ~30 MB and, on the
first delivery, seconds of a loaded machine while a burst waits. The check is the one the SDK
makes (`openai.lib._webhooks`; a test holds the two to the same answers): `webhook-signature`
holds one or more `v1,<base64 HMAC-SHA256>` of "`webhook-id`.`webhook-timestamp`.body", keyed by
the base64 part of the `whsec_...` secret, and the timestamp must be within five minutes of now.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from teckochecker.integrations import Rejected

BATCH_WEBHOOK_EVENTS = {"batch.completed", "batch.failed", "batch.expired", "batch.cancelled"}
TOLERANCE_SECONDS = 300
_INVALID = "The webhook signature is missing, invalid or too old."


@dataclass(frozen=True)
class WebhookEvent:
    webhook_id: str  # the `webhook-id` header: the same for every retry of one delivery
    event_type: str
    batch_id: str  # empty for events that are not about a batch


def unwrap_webhook(*, payload: bytes, headers: dict[str, str], secrets: list[str]) -> WebhookEvent:
    """The event of a delivery signed with any of `secrets` (whsec_...). Raises Rejected when
    the signature does not verify, is stale, or the body is not an event."""
    lowered = {k.lower(): v for k, v in headers.items()}
    webhook_id = lowered.get("webhook-id", "")
    timestamp = lowered.get("webhook-timestamp", "")
    signatures = [part.removeprefix("v1,") for part in lowered.get("webhook-signature", "").split()]
    try:
        sent_at = int(timestamp)
        body = payload.decode()
    except (ValueError, UnicodeDecodeError):
        raise Rejected(_INVALID) from None
    if not webhook_id or not signatures or abs(time.time() - sent_at) > TOLERANCE_SECONDS:
        raise Rejected(_INVALID)
    signed = f"{webhook_id}.{timestamp}.{body}".encode()
    if not any(_matches(secret, signed, signatures) for secret in secrets):
        raise Rejected(_INVALID)
    try:
        event = json.loads(body)
    except ValueError:
        event = None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise Rejected("The webhook body is not an event.")
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    batch_id = data.get("id") if event["type"].startswith("batch.") else ""
    return WebhookEvent(
        webhook_id=webhook_id,
        event_type=event["type"],
        batch_id=batch_id if isinstance(batch_id, str) else "",
    )


def _matches(secret: str, signed: bytes, signatures: list[str]) -> bool:
    try:
        key = (
            base64.b64decode(secret.removeprefix("whsec_"))
            if secret.startswith("whsec_")
            else secret.encode()
        )
    except (binascii.Error, ValueError):
        return False
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, signature) for signature in signatures)
