"""Domain exceptions raised by services and mapped to HTTP statuses in one place (`api.py`)."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a user can cause; `detail` is safe to show to that user."""

    status_code = 400
    # More keys for the error body, e.g. {"line": 3} for a script's syntax error.
    extra: dict = {}

    def __init__(self, detail: str, *, errors: dict[str, list[str]] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or {}


class ValidationFailed(DomainError):
    status_code = 400

    @classmethod
    def from_errors(cls, errors: dict[str, list[str]]) -> ValidationFailed:
        first_field, messages = next(iter(errors.items()))
        detail = messages[0] if first_field == "non_field_errors" else f"{first_field}: {messages[0]}"
        return cls(detail, errors=errors)


class NotFound(DomainError):
    status_code = 404


class Conflict(DomainError):
    status_code = 409


class Forbidden(DomainError):
    status_code = 403


class MethodNotAllowed(DomainError):
    status_code = 405


class PayloadTooLarge(DomainError):
    status_code = 413


MAX_DB_ID = 2**63 - 1


def is_valid_id(value: object) -> bool:
    """True for an int that can be a primary key (ids beyond bigint range are simply unknown)."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_DB_ID


def get_by_id(
    queryset, object_id: object, *, not_found: type[NotFound], label: str, for_update: bool = False
):
    """The row with primary key `object_id`, or `not_found("<label> <id> not found.")` for an id
    that is unknown or cannot be one."""
    if not is_valid_id(object_id):
        raise not_found(f"{label} {object_id} not found.")
    if for_update:
        queryset = queryset.select_for_update()
    try:
        return queryset.get(pk=object_id)
    except queryset.model.DoesNotExist:
        raise not_found(f"{label} {object_id} not found.") from None
