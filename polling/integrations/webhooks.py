"""Outgoing HTTP webhooks (the webhook action and notifications): one JSON POST, signed.

Receivers verify `X-TeckoChecker-Signature: sha256=<hex>`, an HMAC-SHA256 of the raw body with
the shared secret. Raises the outcomes of `teckochecker.integrations`: `NotSent` (connection
refused, DNS, 429), `OutcomeUnknown` (the receiver may have acted: a timeout after sending, a 5xx),
`Rejected` (3xx/4xx other than 429).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.conf import settings

from teckochecker import __version__
from teckochecker.integrations import (
    CONNECT_TIMEOUT_SECONDS,
    NotSent,
    OutcomeUnknown,
    Rejected,
    parse_retry_after,
    transport_outcome,
)

logger = logging.getLogger(__name__)

_session = requests.Session()
_session.headers.update({"User-Agent": f"TeckoChecker/{__version__}", "Content-Type": "application/json"})


@dataclass(frozen=True)
class WebhookResponse:
    status_code: int
    body_excerpt: str


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_json(
    *,
    url: str,
    payload: dict,
    signing_secret: str | None = None,
    headers: dict[str, str] | None = None,
    idempotency_key: str | None = None,
) -> WebhookResponse:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    all_headers = dict(headers or {})
    if signing_secret:
        all_headers["X-TeckoChecker-Signature"] = sign(body, signing_secret)
    if idempotency_key:
        all_headers["Idempotency-Key"] = idempotency_key
    host = urlsplit(url).netloc or url
    timeout = (CONNECT_TIMEOUT_SECONDS, float(settings.WEBHOOK_TIMEOUT_SECONDS))
    error: NotSent | OutcomeUnknown | None = None
    try:
        response = _session.post(url, data=body, headers=all_headers, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        error = transport_outcome(exc, peer=host, timeout=timeout[1], writes=True)
    if error is not None:
        raise error  # outside `except`: nothing of the requests exception is chained
    status = response.status_code
    if status == 429:
        raise NotSent(
            f"{host} is rate limiting (HTTP 429).",
            status_code=status,
            retry_after=parse_retry_after(response.headers),
        )
    if status >= 500:
        raise OutcomeUnknown(f"{host} answered HTTP {status}.", status_code=status)
    if status >= 300:
        raise Rejected(f"{host} refused the webhook (HTTP {status}).", status_code=status)
    return WebhookResponse(status_code=status, body_excerpt=response.text[:200])
