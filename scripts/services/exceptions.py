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


class VersionNotFound(NotFound):
    pass


class VersionConflict(Conflict):
    """A save that started from an older version than the newest; `extra` names the newest."""

    def __init__(self, detail: str, *, extra: dict):
        super().__init__(detail)
        self.extra = extra
