"""The one place that validates polling-job input (API, admin and commands all use it).

Each function returns the cleaned value or raises ValidationFailed with `{field: [message]}`.
Batch-id messages are the exact sentences the user guide promises.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from django.conf import settings

from teckochecker.errors import ValidationFailed

MAX_BATCHES = 10
BATCH_PREFIX = "batch_"
_BATCH_CHARS = re.compile(r"^[A-Za-z0-9_-]+$")
_KEBOOLA_ID = re.compile(r"^\S+$")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _fail(field: str, message: str):
    raise ValidationFailed.from_errors({field: [message]})


def clean_batch_ids(batch_ids: object) -> list[str]:
    if batch_ids is None or (isinstance(batch_ids, (list, tuple)) and len(batch_ids) == 0):
        _fail("batch_ids", "At least one batch ID is required")
    if not isinstance(batch_ids, (list, tuple)):
        _fail("batch_ids", "batch_ids must be a list of batch IDs")
    if not all(isinstance(b, str) for b in batch_ids):
        _fail("batch_ids", "Each batch ID must be a string")
    ids = [b.strip() for b in batch_ids]
    if len(ids) > MAX_BATCHES:
        _fail("batch_ids", f"Too many batch IDs: {len(ids)} (maximum: {MAX_BATCHES})")
    if len(set(ids)) != len(ids):
        _fail("batch_ids", "Duplicate batch IDs found. Each batch ID must be unique.")
    for batch_id in ids:
        shown = _printable(batch_id)
        if not batch_id.startswith(BATCH_PREFIX):
            _fail("batch_ids", f"Invalid batch ID format: '{shown}' (must start with '{BATCH_PREFIX}')")
        if len(batch_id) > 255:
            _fail("batch_ids", f"Batch ID '{shown[:40]}...' exceeds 255 character limit")
        if len(batch_id) == len(BATCH_PREFIX):
            _fail("batch_ids", f"Batch ID '{shown}' too short (must have content after '{BATCH_PREFIX}')")
        if not _BATCH_CHARS.match(batch_id) or not batch_id.isascii():
            _fail("batch_ids", f"Batch ID '{shown}' contains invalid characters")
    return ids


def _printable(text: str) -> str:
    """Show control characters escaped so an error message stays one readable line."""
    return "".join(ch if unicodedata.category(ch)[0] != "C" else repr(ch)[1:-1] for ch in text)


def clean_name(name: object) -> str:
    if not isinstance(name, str):
        _fail("name", "Name must be a string.")
    cleaned = name.strip()
    if not cleaned:
        _fail("name", "Name must not be empty.")
    if len(cleaned) > 255:
        _fail("name", "Name must be at most 255 characters.")
    if any(unicodedata.category(ch)[0] == "C" for ch in cleaned):
        _fail("name", "Name must not contain control characters.")
    return cleaned


def clean_poll_interval(value: object) -> int:
    low, high = settings.MIN_POLL_INTERVAL, settings.MAX_POLL_INTERVAL
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        else:
            _fail("poll_interval_seconds", "Poll interval must be a whole number of seconds.")
    if not low <= value <= high:
        _fail(
            "poll_interval_seconds", f"Poll interval must be between {low} and {high} seconds (got {value})."
        )
    return value


def clean_stack_url(url: object) -> str:
    field = "keboola_stack_url"
    if not isinstance(url, str) or not url.strip():
        _fail(field, "Keboola stack URL is required.")
    cleaned = url.strip().rstrip("/")
    if len(cleaned) > 500 or any(ch.isspace() for ch in cleaned):
        _fail(field, "Keboola stack URL must be a single URL of at most 500 characters.")
    try:
        parts = urlsplit(cleaned)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        _fail(field, f"'{_printable(cleaned)}' is not a valid URL.")
    if parts.query or parts.fragment or parts.path not in ("",) or parts.username or parts.password:
        _fail(
            field,
            "Keboola stack URL must be just scheme and host, e.g. https://connection.eu-central-1.keboola.com",
        )
    if host in LOCAL_HOSTS and parts.scheme in ("http", "https"):
        if settings.ALLOW_LOCAL_URLS:
            return cleaned
        _fail(field, "Local stack URLs are only allowed when ALLOW_LOCAL_URLS or DEBUG is on.")
    labels = host.split(".")
    if parts.scheme != "https" or len(labels) < 3 or labels[0] != "connection" or not all(labels):
        _fail(
            field,
            "Keboola stack URL must look like https://connection.<region>.keboola.com "
            f"(got '{_printable(cleaned)}').",
        )
    return cleaned


def clean_keboola_id(field: str, value: object, label: str) -> str:
    if not isinstance(value, str) or not value.strip():
        _fail(field, f"{label} is required.")
    cleaned = value.strip()
    if len(cleaned) > 255:
        _fail(field, f"{label} must be at most 255 characters.")
    if not _KEBOOLA_ID.match(cleaned) or any(unicodedata.category(ch)[0] == "C" for ch in cleaned):
        _fail(field, f"{label} must not contain white space or control characters.")
    return cleaned


def collect(checks) -> dict:
    """Run several (field, thunk) checks and raise one ValidationFailed with every field's error."""
    cleaned, errors = {}, {}
    for field, thunk in checks:
        try:
            cleaned[field] = thunk()
        except ValidationFailed as exc:
            for key, messages in exc.errors.items():
                errors.setdefault(key, []).extend(messages)
    if errors:
        raise ValidationFailed.from_errors(errors)
    return cleaned


def clean_http_url(field: str, value: object, label: str) -> str:
    """An https URL (or a loopback http URL when ALLOW_LOCAL_URLS is on) for outgoing webhooks."""
    if not isinstance(value, str) or not value.strip():
        _fail(field, f"{label} is required.")
    cleaned = value.strip()
    if len(cleaned) > 500 or any(ch.isspace() for ch in cleaned):
        _fail(field, f"{label} must be a single URL of at most 500 characters.")
    try:
        parts = urlsplit(cleaned)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018
    except ValueError:
        _fail(field, f"'{_printable(cleaned)}' is not a valid URL.")
    if not host or parts.username or parts.password:
        _fail(field, f"{label} must be an https:// URL with a host name.")
    if host in LOCAL_HOSTS and parts.scheme in ("http", "https"):
        if settings.ALLOW_LOCAL_URLS:
            return cleaned
        _fail(field, "Local URLs are only allowed when ALLOW_LOCAL_URLS or DEBUG is on.")
    if parts.scheme != "https":
        _fail(field, f"{label} must use https://.")
    return cleaned


def clean_emails(value: object) -> str:
    """A comma-separated list of at most 10 addresses (a list is accepted too); '' for none."""
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_email

    if value is None or value == "" or value == []:
        return ""
    items = value if isinstance(value, list) else str(value).split(",") if isinstance(value, str) else None
    if items is None or not all(isinstance(i, str) for i in items):
        _fail("notify_emails", "Email recipients must be a comma-separated string or a list of strings.")
    emails = [i.strip() for i in items if i.strip()]
    if len(emails) > 10:
        _fail("notify_emails", "At most 10 email recipients.")
    for email in emails:
        try:
            validate_email(email)
        except ValidationError:
            _fail("notify_emails", f"'{_printable(email)}' is not a valid email address.")
    return ",".join(emails)
