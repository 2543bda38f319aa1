"""Errors the API key services raise; `teckochecker.api.exception_handler` maps them."""

from teckochecker.errors import Conflict, DomainError, NotFound


class ApiKeyNotFound(NotFound):
    pass


class ApiKeyRevoked(Conflict):
    """The key was revoked already."""


class ApiKeyRejected(DomainError):
    """A presented key that does not authenticate (unknown, revoked, expired, owner not staff).
    The authentication class turns it into DRF's 401."""

    status_code = 401


class ApiKeyOutOfScope(DomainError):
    """The key is valid but may not do this (its scope, or another script)."""

    status_code = 403
