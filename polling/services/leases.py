"""Leases: which worker may act on a row and until when; when a row is due; how long to back off.

Any model can be leased that has two fields (the names are the contract, like Takahē's
`state_locked_until`): `lease_token` ("" when nobody holds the row; the holder's token
otherwise) and `lease_expires_at` (when a dead holder's claim lapses and anyone may take the row
over). A claim is one conditional UPDATE over a queryset, so two workers never both win; every
later write of the holder is conditional on its token, so a holder whose lease lapsed and was
taken over changes nothing.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Model, Q, QuerySet

from polling.services.bulk import update_rows

TOKEN = "lease_token"
EXPIRES = "lease_expires_at"
# The fields of a row nobody holds; a write that finishes a row's work releases it with these.
RELEASED = {TOKEN: "", EXPIRES: None}


def lease_token_new(*, prefix: str = "") -> str:
    """A fresh holder token: 32 characters (the column's size), `prefix` included."""
    return prefix + uuid.uuid4().hex[: 32 - len(prefix)]


def lease_free(now: datetime) -> Q:
    """Rows nobody holds: never claimed, released, or their holder's lease has lapsed."""
    return Q(**{f"{EXPIRES}__isnull": True}) | Q(**{f"{EXPIRES}__lt": now})


def lease_held(now: datetime) -> Q:
    """Rows somebody holds right now (the opposite of `lease_free`)."""
    return Q(**{f"{EXPIRES}__gte": now})


def lease_claim(
    rows: QuerySet,
    *,
    seconds: float,
    now: datetime,
    token: str | None = None,
    take_over: Q | None = None,
    **fields: Any,
) -> tuple[str, int]:
    """Claim every row of `rows` that is free (or matches `take_over`) for `seconds`, in one
    conditional UPDATE that also writes `fields` (a state change that goes with the claim, such
    as a run becoming "running"). Returns the token the claimed rows now carry and how many there
    are; the caller reads the rows back by that token when it needs more than the count."""
    token = token or lease_token_new()
    free = lease_free(now) if take_over is None else lease_free(now) | take_over
    claimed = rows.filter(free).update(**{TOKEN: token, EXPIRES: now + timedelta(seconds=seconds)}, **fields)
    return token, claimed


def lease_renew(rows: QuerySet | Model, *, token: str, seconds: float, now: datetime, **fields: Any) -> int:
    """Extend the lease on the rows still held under `token` to `seconds` from `now`, writing
    `fields` with it (progress so far), for work that runs longer than one lease (a running
    script). Returns how many were still ours: 0 means the lease lapsed and was taken over (or
    a condition the caller put on `rows` no longer holds), and the holder must stop."""
    return (
        _rows(rows).filter(**{TOKEN: token}).update(**{EXPIRES: now + timedelta(seconds=seconds)}, **fields)
    )


def lease_release(rows: QuerySet | Model, *, token: str, **fields: Any) -> int:
    """Give back the rows (or the one row) still held under `token`, writing `fields` with them.
    Returns how many were still ours (0: the lease lapsed and someone took the row over)."""
    return _rows(rows).filter(**{TOKEN: token}).update(**RELEASED, **fields)


def lease_release_each(model: type[Model], *, token: str, changes: Mapping[Any, Mapping[str, Any]]) -> None:
    """Give back many rows held under `token` with different values each, in one round trip:
    `changes` maps a primary key to its fields (every row the same field names)."""
    if not changes:
        return
    names = tuple(next(iter(changes.values())))
    update_rows(
        model,
        set_fields=(*RELEASED, *names),
        where_fields=(model._meta.pk.name, TOKEN),
        rows=[(*RELEASED.values(), *(values[n] for n in names), pk, token) for pk, values in changes.items()],
    )


def _rows(rows: QuerySet | Model) -> QuerySet:
    """A queryset of the rows, or of the one row given as an instance."""
    return type(rows)._default_manager.filter(pk=rows.pk) if isinstance(rows, Model) else rows


def due(field: str, now: datetime) -> Q:
    """Rows whose due time `field` has come (a row without one is due at once)."""
    return Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lte": now})


def is_due(due_at: datetime | None, now: datetime) -> bool:
    """The same test as `due`, for a row already in memory."""
    return due_at is None or due_at <= now


def backoff_seconds(
    *, base: float, failures: int, cap: float, retry_after: float | None = None, jitter: float = 0.2
) -> float:
    """How long to wait after the `failures`-th failure in a row: `base` doubling per failure,
    at most `cap`, spread by ±`jitter` so rows that failed together do not retry together, and
    never shorter than the server's `Retry-After`."""
    delay = min(cap, base * 2 ** max(0, failures - 1)) * random.uniform(1 - jitter, 1 + jitter)
    return max(delay, retry_after) if retry_after else delay
