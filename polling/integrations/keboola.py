"""Keboola Job Queue API: create a job, read it, search for it.

Raises the outcomes of `teckochecker.integrations`, which say whether a job may exist, because
Keboola has no idempotency key and we must never create a job twice:

- `NotSent`: certainly nothing was created (429, connection refused, DNS, connect timeout), or
  a read failed;
- `OutcomeUnknown`: a job may exist (read timeout or reset after sending, any 5xx to a create);
  search for it with `search_jobs` before sending again;
- `Rejected`: a 3xx/4xx other than 429 (`CredentialsRejected` for 401/403), or an unusable stack
  URL or token; sending the same request again will not help.

Messages never contain the token, and Keboola's error text only in a short, redacted excerpt.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from teckochecker import __version__
from teckochecker.integrations import (
    CONNECT_TIMEOUT_SECONDS,
    CredentialsRejected,
    IntegrationError,
    NotSent,
    OutcomeUnknown,
    Rejected,
    parse_retry_after,
    transport_outcome,
)
from teckochecker.logfilters import redact

logger = logging.getLogger(__name__)

_MAY_EXIST = " The job may have been created."
SEARCH_LIMIT = 100
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}

_session = requests.Session()
_session.mount("https://", HTTPAdapter(pool_connections=16, pool_maxsize=32, max_retries=0))
_session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0))
_session.headers.update({"Accept": "application/json", "User-Agent": f"TeckoChecker/{__version__}"})


@dataclass(frozen=True)
class KeboolaJob:
    id: str
    status: str
    url: str
    is_finished: bool
    created_time: datetime | None
    duration_seconds: float | None
    variable_values: list[dict] = field(default_factory=list)  # [{"name": ..., "value": ...}]


def queue_url_from_stack(stack_url: str) -> str:
    """The Job Queue base URL for a Keboola stack URL: the host's first label `connection`
    becomes `queue` (https://connection.eu-central-1.keboola.com -> https://queue.eu-central-1.keboola.com);
    a path or trailing slash is dropped. http(s)://127.0.0.1|localhost[:port] (the fake) is kept as
    it is, if ALLOW_LOCAL_URLS is on. Raises ValueError for anything else."""
    try:
        parts = urlsplit(stack_url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ValueError(f"Keboola stack URL {stack_url!r} is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"Keboola stack URL {stack_url!r} must start with https://.")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("Keboola stack URL must not contain credentials, a query or a fragment.")
    if host in _LOCAL_HOSTS:
        if not settings.ALLOW_LOCAL_URLS:
            raise ValueError("Local Keboola stack URLs are only allowed when ALLOW_LOCAL_URLS is on.")
        shown = f"[{host}]" if ":" in host else host
        return f"{parts.scheme}://{shown}" + (f":{port}" if port else "")
    labels = host.split(".")
    if parts.scheme != "https":
        raise ValueError(f"Keboola stack URL {stack_url!r} must use https://.")
    if _is_ip(host) or labels[0] != "connection" or len(labels) < 3 or not all(labels):
        raise ValueError(
            f"Keboola stack URL {stack_url!r} must be the stack's connection URL, "
            "like https://connection.eu-central-1.keboola.com."
        )
    return "https://" + ".".join(["queue", *labels[1:]]) + (f":{port}" if port else "")


def build_trigger_payload(
    *, component_id: str, configuration_id: str, completed_batch_ids: list[str], failed_batch_ids: list[str]
) -> dict:
    """The POST /jobs body of API.md: the batch lists and counts as Keboola variables (strings)."""
    return {
        "mode": "run",
        "component": component_id,
        "config": configuration_id,
        "variableValuesData": {
            "values": trigger_variables(completed=completed_batch_ids, failed=failed_batch_ids)
        },
    }


def trigger_variables(*, completed: list[str], failed: list[str]) -> list[dict[str, str]]:
    """The five variables (names and string values) a trigger passes on: to Keboola, and to a
    script run by the script action as environment variables."""
    completed, failed = list(completed), list(failed)
    return [
        {"name": "batch_ids_completed", "value": json.dumps(completed)},
        {"name": "batch_ids_failed", "value": json.dumps(failed)},
        {"name": "batch_count_total", "value": str(len(completed) + len(failed))},
        {"name": "batch_count_completed", "value": str(len(completed))},
        {"name": "batch_count_failed", "value": str(len(failed))},
    ]


def create_job(*, stack_url: str, token: str, payload: dict) -> KeboolaJob:
    """Create a Keboola job (POST /jobs). Raises NotSent, OutcomeUnknown or Rejected."""
    response = _send("POST", stack_url, "/jobs", token, json_body=payload, writes=True)
    return _job_from(_json(response, writes=True), writes=True)


def get_job(*, stack_url: str, token: str, job_id: str) -> KeboolaJob:
    """A job's current state. Failures to read raise NotSent (safe to retry), 4xx Rejected."""
    response = _send("GET", stack_url, f"/jobs/{quote(str(job_id), safe='')}", token)
    return _job_from(_json(response, writes=False), writes=False)


def search_jobs(
    *, stack_url: str, token: str, component_id: str, configuration_id: str, created_after: datetime
) -> list[KeboolaJob]:
    """Jobs of this component configuration created at or after `created_after` (sent floored to
    the second), newest first. Keboola's search index lags a little behind job creation."""
    if created_after.tzinfo is None:
        created_after = created_after.replace(tzinfo=UTC)
    since = created_after.astimezone(UTC).replace(microsecond=0).isoformat()
    params = [
        ("componentId[]", component_id),
        ("configId[]", configuration_id),
        ("createdTimeFrom", since),
        ("limit", str(SEARCH_LIMIT)),
        ("sortOrder", "desc"),
    ]
    response = _send("GET", stack_url, "/search/jobs", token, params=params)
    body = _json(response, writes=False)
    if not isinstance(body, list):
        raise NotSent("Keboola answered the job search with something other than a list.")
    return [_job_from(item, writes=False) for item in body]


def _send(
    method: str,
    stack_url: str,
    path: str,
    token: str,
    *,
    json_body: dict | None = None,
    params: list | None = None,
    writes: bool = False,
) -> requests.Response:
    try:
        base = queue_url_from_stack(stack_url)
    except ValueError as exc:
        raise Rejected(str(exc)) from None
    if not token:
        raise CredentialsRejected("No Keboola Storage API token is set.")
    timeout = (CONNECT_TIMEOUT_SECONDS, float(settings.KEBOOLA_TIMEOUT_SECONDS))
    error: IntegrationError | None = None
    try:
        response = _session.request(
            method,
            base + path,
            json=json_body,
            params=params,
            headers={"X-StorageApi-Token": token},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        error = transport_outcome(
            exc,
            peer=f"Keboola at {urlsplit(base).netloc}",
            timeout=timeout[1],
            writes=writes,
            unknown_hint=_MAY_EXIST,
        )
    if error is not None:
        raise error  # outside `except`: nothing of the requests exception is chained
    status = response.status_code
    if status == 429:
        raise NotSent(
            "Keboola rate limit reached (HTTP 429).",
            status_code=status,
            retry_after=parse_retry_after(response.headers),
        )
    if status >= 500:
        raise _unreadable(f"Keboola had a server error (HTTP {status}).", writes=writes, status_code=status)
    if status in (401, 403):
        raise CredentialsRejected(
            f"Keboola rejected the Storage API token (HTTP {status}): it is invalid or lacks access.",
            status_code=status,
        )
    if 300 <= status < 500:
        detail = _error_excerpt(response, token)
        raise Rejected(
            f"Keboola refused the request (HTTP {status})" + (f": {detail}" if detail else "."),
            status_code=status,
        )
    return response


def _unreadable(message: str, *, writes: bool, status_code: int | None = None) -> IntegrationError:
    """A failed create may have created the job; a failed read changed nothing."""
    if writes:
        return OutcomeUnknown(message + _MAY_EXIST, status_code=status_code)
    return NotSent(message, status_code=status_code)


def _error_excerpt(response: requests.Response, token: str) -> str:
    """A short, redacted excerpt of Keboola's error text (it helps with a wrong configuration id)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    text = body.get("error") if isinstance(body, dict) else None
    if not isinstance(text, str):
        return ""
    text = redact(text.replace(token, "[redacted]")).strip()
    return text[:200] + ("..." if len(text) > 200 else "")


def _json(response: requests.Response, *, writes: bool) -> object:
    try:
        return response.json()
    except ValueError:
        message = f"Keboola answered HTTP {response.status_code} with a body that is not JSON."
        raise _unreadable(message, writes=writes) from None


def _job_from(body: object, *, writes: bool) -> KeboolaJob:
    if not isinstance(body, dict) or not body.get("id"):
        raise _unreadable("Keboola's answer does not describe a job.", writes=writes)
    variables = (body.get("variableValuesData") or {}).get("values") or []
    duration = body.get("durationSeconds")
    return KeboolaJob(
        id=str(body["id"]),
        status=str(body.get("status") or ""),
        url=str(body.get("url") or ""),
        is_finished=bool(body.get("isFinished")),
        created_time=_parse_time(body.get("createdTime")),
        duration_seconds=float(duration) if isinstance(duration, int | float) else None,
        variable_values=[dict(v) for v in variables if isinstance(v, dict)],
    )


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
