"""Outgoing HTTP webhooks (the webhook action and notifications): one JSON POST, signed.

Receivers verify `X-TeckoChecker-Signature: sha256=<hex>`, an HMAC-SHA256 of the raw body with
the shared secret. Like the Keboola module, errors say whether the receiver may have acted.
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

from polling.integrations.keboola import parse_retry_after
from teckochecker import __version__

logger = logging.getLogger(__name__)

_session = requests.Session()
_session.headers.update({"User-Agent": f"TeckoChecker/{__version__}", "Content-Type": "application/json"})


class WebhookError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class WebhookNotSent(WebhookError):
    """Certainly not delivered (connection refused, DNS, 429)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WebhookOutcomeUnknown(WebhookError):
    """It may have been delivered (timeout after sending, 5xx)."""


class WebhookRejected(WebhookError):
    """The receiver refused it (4xx other than 429)."""


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
    error: WebhookError | None = None
    try:
        response = _session.post(
            url,
            data=body,
            headers=all_headers,
            timeout=(5.0, float(settings.KEBOOLA_TIMEOUT_SECONDS)),
            allow_redirects=False,
        )
    except requests.ConnectionError as exc:
        if isinstance(exc, requests.ConnectTimeout) or "NewConnectionError" in repr(exc):
            error = WebhookNotSent(f"Could not connect to {host}.")
        else:
            error = WebhookOutcomeUnknown(f"The connection to {host} was lost before an answer.")
    except requests.Timeout:
        error = WebhookOutcomeUnknown(f"{host} did not answer in time.")
    except requests.RequestException as exc:
        error = WebhookOutcomeUnknown(f"The webhook to {host} failed ({type(exc).__name__}).")
    if error is not None:
        raise error
    status = response.status_code
    if status == 429:
        raise WebhookNotSent(
            f"{host} is rate limiting (HTTP 429).", retry_after=parse_retry_after(response.headers)
        )
    if status >= 500:
        raise WebhookOutcomeUnknown(f"{host} answered HTTP {status}.")
    if status >= 300:
        raise WebhookRejected(f"{host} refused the webhook (HTTP {status}).")
    return WebhookResponse(status_code=status, body_excerpt=response.text[:200])
