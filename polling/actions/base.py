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


class Action(Protocol):
    """Runs one kind of action. `send` and `find` raise the outcomes of `teckochecker.integrations`
    (NotSent, OutcomeUnknown, Rejected) as the integration they call raised them."""

    type: ClassVar[str]
    secret_field: ClassVar[str]  # the job's field holding this action's secret ("" when optional/none)

    def send(self, job: PollingJob, meta: TriggerMetadata, *, secret: str | None) -> ActionResult: ...

    def find(
        self, job: PollingJob, meta: TriggerMetadata, *, secret: str | None, since: datetime
    ) -> ActionResult | None:
        """The result of an earlier send with an unknown outcome, or None if it did nothing.

        Raises NotSent when it cannot tell yet (the lookup itself failed)."""
        ...
