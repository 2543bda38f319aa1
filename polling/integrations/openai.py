"""OpenAI Batch API: read batch status through the official SDK.

The only module that imports `openai`. Returns `BatchInfo`; raises the outcomes of
`teckochecker.integrations`, whose messages are ours: never the API key, never OpenAI's error body
(a 401 body echoes part of the key). Every read is safe to repeat, so a failure is `NotSent`
(429, 5xx, 408, 409, timeouts, connection errors, an unreadable answer) or `Rejected`:
`CredentialsRejected` (no key, 401/403), `ResourceNotFound` (404: no such batch for this key), or
plain `Rejected` (any other 4xx, an empty batch id). The SDK does not retry (`max_retries=0`);
callers retry by rescheduling.

Reads go through one thread pool per process (`OPENAI_MAX_CONCURRENCY` requests in flight), so
a worker checking many jobs at once neither starts threads per check nor floods OpenAI. Webhook
confirmations (`urgent`) have a second pool of the same size: in the shared one, their reads
would queue behind the pages of routine sweeps. The
answer is read from the SDK's raw response (`with_raw_response`): the same request, errors and
headers as `batches.retrieve`, without building a pydantic model per batch (about 40% of the
CPU a read costs, measured in docs/BENCHMARKS.md).

`list_walks` reads a key's list of batches (`GET /v1/batches`, newest first, 100 a page) from
several starting points at once; the caller says where each walk starts and when it has seen
enough (polling/services/sweeps.py).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import openai
from django.conf import settings

from teckochecker.integrations import (
    CredentialsRejected,
    IntegrationError,
    NotSent,
    Rejected,
    ResourceNotFound,
    parse_retry_after,
    transport_outcome,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_CLIENT_CACHE_SIZE = 32


@dataclass(frozen=True)
class BatchInfo:
    batch_id: str
    status: str
    request_total: int
    request_completed: int
    request_failed: int
    created_at: datetime | None
    finished_at: datetime | None  # when it became completed / failed / expired / cancelled


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
    """The batch's status and request counts. Raises NotSent or Rejected (see the module)."""
    if not api_key:
        raise CredentialsRejected("No OpenAI API key is set.")
    if not batch_id:
        raise Rejected("The batch id is empty.")
    client = _clients.get(api_key)
    error: IntegrationError | None = None
    try:
        raw = client.batches.with_raw_response.retrieve(batch_id)
        body = raw.http_response.json()
    except openai.APIError as exc:
        error = _translate(exc, batch_id)
    except ValueError:  # not JSON
        error = NotSent(_UNREADABLE)
    if error is not None:
        # Raised outside the `except` so the SDK exception (and its body) is not chained.
        raise error
    return _batch_info(batch_id, body)


@dataclass
class Walk:
    """One walk down a key's list: it starts after the batch `after` (None: at the newest) and
    asks `enough(page)` after each page whether to stop. `run` fills in the rest."""

    after: str | None
    enough: Callable[[list[BatchInfo]], bool]
    batches: list[BatchInfo] = field(default_factory=list)
    pages: int = 0
    reached_end: bool = False  # OpenAI said there is nothing older (`has_more` false)
    error: IntegrationError | None = None


PAGE_SIZE = 100  # the most OpenAI returns per page


def list_page(
    *, api_key: str, after: str | None = None, limit: int = PAGE_SIZE
) -> tuple[list[BatchInfo], bool]:
    """One page of the key's batches, newest first, after the batch `after`: the batches and
    whether older ones remain (`has_more`). Raises NotSent or Rejected like `retrieve_batch`."""
    if not api_key:
        raise CredentialsRejected("No OpenAI API key is set.")
    client = _clients.get(api_key)
    error: IntegrationError | None = None
    try:
        params = {"limit": limit, **({"after": after} if after else {})}
        raw = client.batches.with_raw_response.list(**params)
        body = raw.http_response.json()
    except openai.APIError as exc:
        error = _translate(exc, "")
    except ValueError:
        error = NotSent(_UNREADABLE)
    if error is not None:
        raise error
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise NotSent(_UNREADABLE)
    batches = [_batch_info("", item) for item in body["data"]]
    return batches, body.get("has_more") is True


def list_walks(api_key: str, walks: list[Walk], *, max_pages: int, urgent: bool = False) -> None:
    """Run `walks` at once (on the shared pool, or with `urgent` the confirmations' pool), at
    most `max_pages` pages between them. A walk stops at its `enough`, at the end of the list, at
    an error (in `.error`), or when the pages run out. Never raises for one walk."""
    budget = _PageBudget(max_pages)
    if len(walks) == 1:
        _walk(api_key, walks[0], budget)
        return
    for future in [_pool(urgent=urgent).submit(_walk, api_key, walk, budget) for walk in walks]:
        future.result()


class _PageBudget:
    def __init__(self, pages: int) -> None:
        self._left, self._lock = pages, threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True


def _walk(api_key: str, walk: Walk, budget: _PageBudget) -> None:
    after = walk.after
    while budget.take():
        try:
            page, has_more = list_page(api_key=api_key, after=after)
        except IntegrationError as exc:
            walk.error = exc
            return
        except Exception as exc:  # an SDK surprise ends this walk only
            logger.warning("Unexpected %s while listing OpenAI batches", type(exc).__name__)
            walk.error = NotSent(f"Unexpected error while listing batches ({type(exc).__name__}).")
            return
        walk.pages += 1
        walk.batches.extend(page)
        if not has_more or not page:
            walk.reached_end = True
            return
        if walk.enough(page):
            return
        after = page[-1].batch_id


def retrieve_many(
    reads: list[tuple[str, str]], *, urgent: bool = False
) -> dict[tuple[str, str], BatchInfo | IntegrationError]:
    """Many (api_key, batch_id) reads at once, for the batches of several jobs: each pair's
    `BatchInfo` or the outcome its request raised. Never raises for one read. `urgent`: on the
    confirmations' pool."""
    unique = list(dict.fromkeys(reads))
    if len(unique) <= 1:
        return {read: _outcome(*read) for read in unique}
    futures = [_pool(urgent=urgent).submit(_outcome, *read) for read in unique]
    return {read: future.result() for read, future in zip(unique, futures, strict=True)}


_pool_lock = threading.Lock()
_pools: dict[bool, ThreadPoolExecutor] = {}


def _pool(*, urgent: bool = False) -> ThreadPoolExecutor:
    """The process's pool for OpenAI reads (or for urgent ones), created on first use (after a
    fork, too)."""
    with _pool_lock:
        if urgent not in _pools:
            _pools[urgent] = ThreadPoolExecutor(
                max_workers=settings.OPENAI_MAX_CONCURRENCY,
                thread_name_prefix="openai-urgent" if urgent else "openai",
            )
        return _pools[urgent]


def _outcome(api_key: str, batch_id: str) -> BatchInfo | IntegrationError:
    try:
        return retrieve_batch(api_key=api_key, batch_id=batch_id)
    except IntegrationError as exc:
        return exc
    except Exception as exc:  # a bug or an SDK surprise must not hide the other batches' results
        logger.warning("Unexpected %s while reading OpenAI batch %s", type(exc).__name__, batch_id)
        return NotSent(f"Unexpected error while reading the batch ({type(exc).__name__}).")


_UNREADABLE = "OpenAI returned an answer that could not be read."


def _translate(exc: openai.APIError, batch_id: str) -> IntegrationError:
    """`batch_id` is empty for a list request."""
    if isinstance(exc, openai.APIConnectionError):  # and its APITimeoutError
        timeout = float(settings.OPENAI_TIMEOUT_SECONDS)
        return transport_outcome(exc, peer="OpenAI", timeout=timeout, writes=False)
    if not isinstance(exc, openai.APIStatusError):
        return NotSent(_UNREADABLE)
    status = exc.status_code
    if status in (401, 403):
        return CredentialsRejected(f"OpenAI rejected the API key (HTTP {status}).", status_code=status)
    if status == 404 and not batch_id:
        return Rejected("OpenAI does not know the list of batches (HTTP 404).", status_code=status)
    if status == 404:
        return ResourceNotFound(
            f"OpenAI has no batch {batch_id!r} for this API key (HTTP 404).", status_code=status
        )
    if status == 429:
        return NotSent(
            "OpenAI rate limit reached (HTTP 429).",
            status_code=status,
            retry_after=parse_retry_after(exc.response.headers),
        )
    if status >= 500 or status in (408, 409):
        return NotSent(
            f"OpenAI had a temporary problem (HTTP {status}).",
            status_code=status,
            retry_after=parse_retry_after(exc.response.headers),
        )
    return Rejected(f"OpenAI refused the request (HTTP {status}).", status_code=status)


def _timestamp(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _count(counts: dict, name: str) -> int:
    value = counts.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _batch_info(batch_id: str, body: object) -> BatchInfo:
    """The fields we use of a Batch object (openai-batch-openapi.json), read defensively."""
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        raise NotSent(_UNREADABLE)
    counts = body.get("request_counts") if isinstance(body.get("request_counts"), dict) else {}
    finished = next(
        (body[k] for k in ("completed_at", "failed_at", "expired_at", "cancelled_at") if body.get(k)), None
    )
    return BatchInfo(
        batch_id=body.get("id") if isinstance(body.get("id"), str) and body.get("id") else batch_id,
        status=body["status"],
        request_total=_count(counts, "total"),
        request_completed=_count(counts, "completed"),
        request_failed=_count(counts, "failed"),
        created_at=_timestamp(body.get("created_at")),
        finished_at=_timestamp(finished),
    )
