from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from polling.models import PollingJob


@dataclass(frozen=True)
class TriggerMetadata:
    """Which batches completed and which failed; every action passes this on."""

    completed: list[str]
    failed: list[str]

    @property
    def total(self) -> int:
        return len(self.completed) + len(self.failed)


@dataclass(frozen=True)
class ActionResult:
    reference: str = ""  # e.g. the Keboola job id
    url: str = ""
    status: str = ""  # e.g. the Keboola job's first status
    extra: dict = field(default_factory=dict)


class ActionError(Exception):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class ActionNotSent(ActionError):
    """Certainly nothing happened downstream: safe to try again later."""


class ActionOutcomeUnknown(ActionError):
    """Something may have happened downstream: look it up (`find`) before sending again."""


class ActionRejected(ActionError):
    """Refused for good: the job fails with this message."""


class Action(Protocol):
    type: ClassVar[str]
    secret_field: ClassVar[str]  # the job's field holding this action's secret ("" when optional/none)

    def send(self, job: PollingJob, meta: TriggerMetadata, *, secret: str | None) -> ActionResult: ...

    def find(
        self, job: PollingJob, meta: TriggerMetadata, *, secret: str | None, since: datetime
    ) -> ActionResult | None:
        """The result of an earlier send with an unknown outcome, or None if it did nothing.

        Raises ActionNotSent when it cannot tell yet (the lookup itself failed)."""
        ...
