"""OpenAI Batch API: read batch status through the official SDK.

The only module that imports `openai`. Returns `BatchInfo`, raises `OpenAIError` subclasses whose
messages are ours: never the API key, never OpenAI's error body (a 401 body echoes part of the key).
The SDK does not retry (`max_retries=0`); callers retry by rescheduling.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

import openai
from django.conf import settings

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_CLIENT_CACHE_SIZE = 32
_MAX_WORKERS = 8


@dataclass(frozen=True)
class BatchInfo:
    batch_id: str
    status: str
    request_total: int
    request_completed: int
    request_failed: int
    created_at: datetime | None
    finished_at: datetime | None  # when it became completed / failed / expired / cancelled


class OpenAIError(Exception):
    """Base class; `.message` is safe to show to users and to log."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class OpenAIRetryable(OpenAIError):
    """429, 5xx, timeouts, connection errors. `.retry_after` is OpenAI's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OpenAIAuthError(OpenAIError):
    """401/403: the key is wrong, revoked, or lacks access."""


class OpenAIBatchNotFound(OpenAIError):
    """404: no such batch for this key."""


class OpenAIRequestError(OpenAIError):
    """Any other 4xx: retrying the same request will not help."""


class _ClientCache:
    """A small LRU of SDK clients so connection pools are reused. Keyed by the key's SHA-256."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._clients: OrderedDict[tuple[str, str, float], openai.OpenAI] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, api_key: str) -> openai.OpenAI:
        base_url = settings.OPENAI_BASE_URL or DEFAULT_BASE_URL
        timeout = float(settings.OPENAI_TIMEOUT_SECONDS)
        cache_key = (hashlib.sha256(api_key.encode()).hexdigest(), base_url, timeout)
        with self._lock:
            client = self._clients.get(cache_key)
            if client is not None:
                self._clients.move_to_end(cache_key)
                return client
        client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0)
        with self._lock:
            # Another thread may have built one meanwhile; keep the first so pools are shared.
            existing = self._clients.setdefault(cache_key, client)
            self._clients.move_to_end(cache_key)
            evicted = []
            while len(self._clients) > self._size:
                evicted.append(self._clients.popitem(last=False)[1])
        if existing is not client:
            client.close()
        for old in evicted:
            old.close()
        return existing

    def clear(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            client.close()


_clients = _ClientCache(_CLIENT_CACHE_SIZE)


def retrieve_batch(*, api_key: str, batch_id: str) -> BatchInfo:
    """The batch's status and request counts. Raises an `OpenAIError` subclass."""
    if not api_key:
        raise OpenAIAuthError("No OpenAI API key is set.")
    if not batch_id:
        raise OpenAIRequestError("The batch id is empty.")
    client = _clients.get(api_key)
    error: OpenAIError | None = None
    try:
        batch = client.batches.retrieve(batch_id)
    except openai.APIError as exc:
        error = _translate(exc, batch_id)
    if error is not None:
        # Raised outside the `except` so the SDK exception (and its body) is not chained.
        raise error
    return _batch_info(batch_id, batch)


def retrieve_batches(*, api_key: str, batch_ids: list[str]) -> dict[str, BatchInfo | OpenAIError]:
    """Each batch's `BatchInfo`, or the `OpenAIError` that batch's request raised. Never raises
    for one batch; requests run concurrently on a small thread pool."""
    unique = list(dict.fromkeys(batch_ids))
    if len(unique) <= 1:
        return {batch_id: _outcome(api_key, batch_id) for batch_id in unique}
    with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(unique)), thread_name_prefix="openai") as pool:
        outcomes = pool.map(lambda batch_id: _outcome(api_key, batch_id), unique)
        return dict(zip(unique, outcomes, strict=True))


def _outcome(api_key: str, batch_id: str) -> BatchInfo | OpenAIError:
    try:
        return retrieve_batch(api_key=api_key, batch_id=batch_id)
    except OpenAIError as exc:
        return exc
    except Exception as exc:  # a bug or an SDK surprise must not hide the other batches' results
        logger.warning("Unexpected %s while reading OpenAI batch %s", type(exc).__name__, batch_id)
        return OpenAIRetryable(f"Unexpected error while reading the batch ({type(exc).__name__}).")


def _translate(exc: openai.APIError, batch_id: str) -> OpenAIError:
    if isinstance(exc, openai.APITimeoutError):
        return OpenAIRetryable(f"OpenAI did not answer within {settings.OPENAI_TIMEOUT_SECONDS:g} s.")
    if isinstance(exc, openai.APIConnectionError):
        return OpenAIRetryable("Could not connect to OpenAI (connection failed or was reset).")
    if not isinstance(exc, openai.APIStatusError):
        return OpenAIRetryable("OpenAI returned an answer that could not be read.")
    status = exc.status_code
    if status in (401, 403):
        return OpenAIAuthError(f"OpenAI rejected the API key (HTTP {status}).")
    if status == 404:
        return OpenAIBatchNotFound(f"OpenAI has no batch {batch_id!r} for this API key (HTTP 404).")
    if status == 429:
        return OpenAIRetryable(
            "OpenAI rate limit reached (HTTP 429).", retry_after=parse_retry_after(exc.response.headers)
        )
    if status >= 500 or status in (408, 409):
        return OpenAIRetryable(
            f"OpenAI had a temporary problem (HTTP {status}).",
            retry_after=parse_retry_after(exc.response.headers),
        )
    return OpenAIRequestError(f"OpenAI refused the request (HTTP {status}).")


def parse_retry_after(headers) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            value = float(raw_ms) / 1000
            if math.isfinite(value) and value >= 0:
                return value
        except ValueError:
            pass
    raw = (headers.get("retry-after") or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
        return value if math.isfinite(value) and value >= 0 else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - time.time(), 0.0)


def _timestamp(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


def _batch_info(batch_id: str, batch: openai.types.Batch) -> BatchInfo:
    counts = batch.request_counts
    finished = batch.completed_at or batch.failed_at or batch.expired_at or batch.cancelled_at
    return BatchInfo(
        batch_id=batch.id or batch_id,
        status=str(batch.status),
        request_total=counts.total if counts else 0,
        request_completed=counts.completed if counts else 0,
        request_failed=counts.failed if counts else 0,
        created_at=_timestamp(batch.created_at),
        finished_at=_timestamp(finished),
    )


# --- Webhooks -------------------------------------------------------------------------------
BATCH_WEBHOOK_EVENTS = {"batch.completed", "batch.failed", "batch.expired", "batch.cancelled"}


class OpenAIWebhookInvalid(OpenAIError):
    """The signature does not verify, is stale, or the body is not an OpenAI event."""


@dataclass(frozen=True)
class WebhookEvent:
    webhook_id: str  # the `webhook-id` header: the same for every retry of one delivery
    event_type: str
    batch_id: str  # empty for events that are not about a batch


def unwrap_webhook(*, payload: bytes, headers: dict[str, str], secrets: list[str]) -> WebhookEvent:
    """Verify a Standard Webhooks delivery with the SDK against any of `secrets` (whsec_...)."""
    client = openai.OpenAI(api_key="unused-for-webhooks", base_url="http://127.0.0.1:9/v1")
    lowered = {k.lower(): v for k, v in headers.items()}
    event = None
    for secret in secrets:
        try:
            event = client.webhooks.unwrap(payload, lowered, secret=secret)
            break
        except (openai.InvalidWebhookSignatureError, ValueError, KeyError):
            continue
        except Exception:  # a malformed body the SDK could not parse after verifying
            event = None
            break
    if event is None:
        raise OpenAIWebhookInvalid("The webhook signature is missing, invalid or too old.")
    event_type = str(getattr(event, "type", "") or "")
    data = getattr(event, "data", None)
    batch_id = str(getattr(data, "id", "") or "") if event_type.startswith("batch.") else ""
    return WebhookEvent(webhook_id=lowered.get("webhook-id", ""), event_type=event_type, batch_id=batch_id)
