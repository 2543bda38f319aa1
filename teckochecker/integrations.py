"""What can come of a call to another system: the outcomes every integration raises.

Every integration (OpenAI, Keboola, outgoing webhooks, and whatever else calls out) raises one of
three outcomes, so callers decide what to do without knowing which system answered:

- `NotSent`: certainly nothing happened on the other side (connection refused, DNS, 429, any
  failed read); sending again is safe. `retry_after` is the other side's hint, if it gave one.
- `OutcomeUnknown`: something may have happened (a timeout or a dropped connection after sending,
  a 5xx to a write); look it up before sending again.
- `Rejected`: refused for good (a 4xx, an unusable setting); sending the same again will not help.
  Two refusals the engine counts separately are subclasses: `CredentialsRejected` (the key or
  token is missing, wrong, revoked or lacks access) and `ResourceNotFound` (the thing asked
  about does not exist, e.g. an unknown OpenAI batch).

`.message` is ours, safe to show to users and to log: never a secret, never a vendor's raw error
body. Integrations raise outside their `except` blocks so no vendor exception is chained.

`parse_retry_after` reads a `Retry-After` header; `transport_failure` tells how a request failed
below HTTP (for `requests` and the OpenAI SDK alike) and `transport_outcome` turns that into one of
the outcomes.
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from datetime import UTC
from enum import StrEnum

import urllib3.exceptions

# How long any outgoing request may take to connect; the answer's timeout is each integration's.
CONNECT_TIMEOUT_SECONDS = 5.0


class IntegrationError(Exception):
    """Base of the outcomes; catch a subclass, this only when any failure is handled alike."""

    def __init__(self, message: str, *, status_code: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code  # the HTTP status, when there was an answer
        self.retry_after = retry_after  # seconds the other side asked us to wait, if it said


class NotSent(IntegrationError):
    """Certainly nothing happened on the other side: safe to send again (after `retry_after`)."""


class OutcomeUnknown(IntegrationError):
    """Something may have happened on the other side: look it up before sending again."""


class Rejected(IntegrationError):
    """Refused for good: sending the same again will not help."""


class CredentialsRejected(Rejected):
    """The key or token is missing, wrong, revoked or lacks access (HTTP 401/403)."""


class ResourceNotFound(Rejected):
    """The thing asked about does not exist for these credentials (HTTP 404)."""


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI's) or `Retry-After` (seconds or an HTTP
    date; a past date is 0), or None when neither is there or readable. Header names in any case."""
    lowered = {str(k).lower(): str(v).strip() for k, v in headers.items()}
    milliseconds = _non_negative(lowered.get("retry-after-ms", ""))
    if milliseconds is not None:
        return milliseconds / 1000
    raw = lowered.get("retry-after", "")
    seconds = _non_negative(raw)
    if seconds is not None or not raw:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - time.time(), 0.0)


def _non_negative(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


class Transport(StrEnum):
    """How a request failed below HTTP."""

    NOT_CONNECTED = "not_connected"  # refused, DNS, connect or pool timeout, TLS handshake: nothing sent
    TIMED_OUT = "timed_out"  # sent (perhaps in part), no answer in time
    LOST = "lost"  # the connection broke after it was made
    OTHER = "other"  # anything else (an unreadable answer, a bad URL, ...)


# urllib3 (under requests). NewConnectionError (refused, DNS) is a ConnectTimeoutError. Its
# SSLError is, but for a corrupted stream, a failed TLS handshake (a bad certificate): not sent.
_NOT_CONNECTED = (urllib3.exceptions.ConnectTimeoutError, urllib3.exceptions.SSLError)
_TIMED_OUT = (urllib3.exceptions.ReadTimeoutError, TimeoutError)
_LOST = (urllib3.exceptions.ProtocolError, ConnectionError)
# httpx (under the OpenAI SDK, which now ships it as `httpx2`), matched by class name so that
# neither package is imported here: the SDK is imported only where it is used (~1.5 s).
_HTTPX_PACKAGES = ("httpx", "httpx2")
_HTTPX_NOT_CONNECTED = {"ConnectError", "ConnectTimeout", "PoolTimeout"}
_HTTPX_TIMED_OUT = {"TimeoutException"}
_HTTPX_LOST = {"NetworkError", "RemoteProtocolError"}


def transport_failure(exc: BaseException) -> Transport:
    """Classify a failed request from the exception a client raised (a `requests` exception, an
    `openai.APIConnectionError`/`APITimeoutError`, or what they wrap), by the whole chain of causes."""
    found = {_classify_one(link) for link in _chain(exc)}
    for transport in (Transport.NOT_CONNECTED, Transport.TIMED_OUT, Transport.LOST):
        if transport in found:
            return transport
    return Transport.OTHER


def transport_outcome(
    exc: BaseException, *, peer: str, timeout: float, writes: bool, unknown_hint: str = ""
) -> NotSent | OutcomeUnknown:
    """The outcome of a request that got no HTTP answer. A read is always safe to repeat; a write
    is `OutcomeUnknown` (with `unknown_hint` appended) unless it certainly never left. `peer`
    names the other side in messages ("Keboola at queue.keboola.com")."""
    failure = transport_failure(exc)
    if failure is Transport.NOT_CONNECTED:
        return NotSent(f"Could not connect to {peer}.")
    if failure is Transport.TIMED_OUT:
        message = f"{peer} did not answer within {timeout:g} s."
    elif failure is Transport.LOST:
        message = f"The connection to {peer} was lost before an answer."
    else:
        message = f"The request to {peer} failed ({type(exc).__name__})."
    return OutcomeUnknown(message + unknown_hint) if writes else NotSent(message)


def _classify_one(exc: BaseException) -> Transport:
    httpx_names = {
        cls.__name__ for cls in type(exc).__mro__ if cls.__module__.split(".")[0] in _HTTPX_PACKAGES
    }
    if isinstance(exc, _NOT_CONNECTED) or httpx_names & _HTTPX_NOT_CONNECTED:
        return Transport.NOT_CONNECTED
    if isinstance(exc, _TIMED_OUT) or httpx_names & _HTTPX_TIMED_OUT:
        return Transport.TIMED_OUT
    if isinstance(exc, _LOST) or httpx_names & _HTTPX_LOST:
        return Transport.LOST
    return Transport.OTHER


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything it wraps: urllib3's `.reason`, requests' first argument, and
    Python's `__cause__`/`__context__`."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if any(current is s for s in seen):
            continue
        seen.append(current)
        first_arg = current.args[0] if current.args else None
        for linked in (getattr(current, "reason", None), first_arg, current.__cause__, current.__context__):
            if isinstance(linked, BaseException):
                pending.append(linked)
    return seen
