"""Everything that makes, checks and revokes API keys. The API, the admin, `manage.py apikey`,
the authentication class and the rate limit all call these.

A key is `tck_` followed by 43 URL-safe characters (32 random bytes). Its first 12 characters
are its prefix, stored in clear to find the row and to show; the rest is only ever compared as
a SHA-256 hash, in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import re
import secrets
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from apikeys.exceptions import ApiKeyNotFound, ApiKeyRejected, ApiKeyRevoked
from apikeys.models import ApiKey, ApiKeyScope
from polling.validation import clean_name
from teckochecker.errors import ValidationFailed, get_by_id

logger = logging.getLogger("teckochecker.apikeys")

KEY_MARK = "tck_"
PREFIX_LENGTH = 12
# Last-used times are written at most this often per key, not on every request.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_RELATIVE = re.compile(r"^(\d{1,5})\s*([hdw])$")
_RELATIVE_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def clean_expires_at(value: object, *, now: datetime | None = None) -> datetime | None:
    """None (never), a datetime, an ISO date or date-time, or a span from now: `12h`, `30d`, `8w`.
    Must lie in the future."""
    now = now or timezone.now()
    if value is None or value == "":
        return None
    when = value if isinstance(value, datetime) else None
    if isinstance(value, str):
        text = value.strip()
        if match := _RELATIVE.match(text.lower()):
            when = now + timedelta(**{_RELATIVE_UNITS[match[2]]: int(match[1])})
        else:
            try:
                when = parse_datetime(text)
                if when is None and (day := parse_date(text)) is not None:
                    when = datetime(day.year, day.month, day.day)
            except ValueError:
                when = None
    if when is None:
        raise ValidationFailed.from_errors(
            {
                "expires_at": [
                    "Expiry must be a date (2027-01-31), a date-time, or a span such as 30d, 12h, 8w."
                ]
            }
        )
    if timezone.is_naive(when):
        when = timezone.make_aware(when)
    if when <= now:
        raise ValidationFailed.from_errors({"expires_at": ["Expiry must be in the future."]})
    return when


def apikey_get(*, key_id: int) -> ApiKey:
    return get_by_id(
        ApiKey.objects.select_related("script", "owner"), key_id, not_found=ApiKeyNotFound, label="API key"
    )


def apikey_get_by_ref(*, ref: str) -> ApiKey:
    """A key by id or by its prefix (what `apikey list` shows)."""
    text = str(ref).strip()
    if text.isdigit():
        return apikey_get(key_id=int(text))
    key = ApiKey.objects.select_related("script", "owner").filter(prefix=text.rstrip("…")).first()
    if key is None:
        raise ApiKeyNotFound(f"API key '{text[: PREFIX_LENGTH + 4]}' not found (give its ID or prefix).")
    return key


def apikey_create(
    *, name: str, owner, scope: str = ApiKeyScope.TRIGGER, script=None, expires_at: object = None
) -> tuple[ApiKey, str]:
    """Make a key; returns the stored row and the key itself, which is never available again.

    `script` (a Script, or None for all scripts) only goes with the scripts:trigger scope.
    Raises ValidationFailed naming each bad field.
    """
    errors: dict[str, list[str]] = {}
    cleaned: dict = {}
    try:
        cleaned["name"] = clean_name(name)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if scope not in ApiKeyScope.values:
        errors["scope"] = [
            f"Scope must be one of: {', '.join(ApiKeyScope.values)} (got {str(scope)[:40]!r})."
        ]
    elif scope == ApiKeyScope.FULL and script is not None:
        errors["script"] = [
            "Only a scripts:trigger key is limited to one script; a full key has the whole API."
        ]
    try:
        cleaned["expires_at"] = clean_expires_at(expires_at)
    except ValidationFailed as exc:
        errors.update(exc.errors)
    if owner is None or not (owner.is_active and owner.is_staff):
        errors["owner"] = ["A key's owner must be an active staff user; the API only serves staff."]
    if errors:
        raise ValidationFailed.from_errors(errors)
    for _attempt in range(5):
        raw = KEY_MARK + secrets.token_urlsafe(32)
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(
                    prefix=raw[:PREFIX_LENGTH],
                    key_hash=_hash(raw),
                    scope=scope,
                    script=script,
                    owner=owner,
                    **cleaned,
                )
        except IntegrityError:  # the same prefix drawn twice (1 in 2^48): draw again
            continue
        logger.info("API %s created for %s", key.label, owner.get_username())
        return key, raw
    raise RuntimeError("could not draw a unique API key prefix")


def apikey_revoke(*, key: ApiKey) -> ApiKey:
    """Revoke at once: the next request with the key gets 401. The row stays for the record.
    Raises ApiKeyRevoked for a key revoked before."""
    if not ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now()):
        if not ApiKey.objects.filter(pk=key.pk).exists():
            raise ApiKeyNotFound(f"API key {key.pk} not found.")
        raise ApiKeyRevoked(f"API {key.label} was revoked already.")
    logger.info("API %s revoked", key.label)
    return apikey_get(key_id=key.pk)


def apikey_authenticate(*, raw: str, now: datetime | None = None) -> ApiKey:
    """The key a request presented, if it may be used now; raises ApiKeyRejected saying why.

    Wrong keys all get the same answer; a revoked or expired key (its holder knows it) is told
    so, to tell them apart from a typo."""
    now = now or timezone.now()
    key = None
    if raw.startswith(KEY_MARK) and len(raw) <= 128:
        key = ApiKey.objects.select_related("owner", "script").filter(prefix=raw[:PREFIX_LENGTH]).first()
    # compare_digest on every path, so a wrong key costs the same whether or not its prefix exists.
    matches = hmac.compare_digest(_hash(raw), key.key_hash if key is not None else _hash(""))
    if key is None or not matches:
        raise ApiKeyRejected("Invalid API key.")
    if key.revoked_at is not None:
        raise ApiKeyRejected(f"API {key.label} was revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise ApiKeyRejected(f"API {key.label} expired.")
    if not (key.owner.is_active and key.owner.is_staff):
        raise ApiKeyRejected(f"The owner of API {key.label} is no longer an active staff user.")
    _touch(key, now)
    return key


def _touch(key: ApiKey, now: datetime) -> None:
    """Record the use, at most once per LAST_USED_RESOLUTION (no write on most requests)."""
    stale = now - LAST_USED_RESOLUTION
    if key.last_used_at is not None and key.last_used_at > stale:
        return
    ApiKey.objects.filter(pk=key.pk).filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale)).update(
        last_used_at=now
    )
    key.last_used_at = now


_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int] | None:
    """'60/minute' -> (60, 60); '' or '0/...' -> None (no limit)."""
    if not rate:
        return None
    count, _, period = rate.partition("/")
    if not count.strip().isdigit() or not period.strip() or period.strip()[0] not in _PERIODS:
        raise ValueError(f"a rate looks like 60/minute (got {rate!r})")
    return (int(count), _PERIODS[period.strip()[0]]) if int(count) else None


def apikey_rate_take(*, key: ApiKey, now: float | None = None) -> int | None:
    """Count one request of the key against API_KEY_RATE_LIMIT; None when allowed, else the
    seconds until the window ends (the Retry-After).

    A fixed window counted in the key's row by one conditional UPDATE: it works across every
    process on SQLite and PostgreSQL alike, where the configured cache (local memory) would not.
    """
    rate = parse_rate(settings.API_KEY_RATE_LIMIT)
    if rate is None:
        return None
    limit, period = rate
    now = time.time() if now is None else now
    window = int(now // period)
    counted = (
        ApiKey.objects.filter(pk=key.pk)
        .exclude(rate_window=window, rate_count__gte=limit)
        .update(
            rate_count=Case(When(rate_window=window, then=F("rate_count") + 1), default=Value(1)),
            rate_window=window,
        )
    )
    if counted:
        return None
    return max(1, math.ceil((window + 1) * period - now))
