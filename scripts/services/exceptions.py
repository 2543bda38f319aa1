"""Errors the scripts services raise; `teckochecker.api.exception_handler` maps them."""

from teckochecker.errors import Conflict, NotFound


class ScriptNotFound(NotFound):
    pass


class RunNotFound(NotFound):
    pass


class RunNotActive(Conflict):
    """Only a queued or running run can be cancelled."""


class ScriptStateConflict(Conflict):
    """The script's state does not allow this (disabled, environment building, ...)."""
