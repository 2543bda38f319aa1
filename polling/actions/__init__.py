"""What happens when every batch of a job is terminal: an "action".

An action is a module with a class implementing `base.Action`, registered in `REGISTRY` below.
A third action type is one new module plus one line here (and a member of `ActionType`).
"""

from __future__ import annotations

from polling.actions.base import Action, ActionResult, TriggerMetadata
from polling.actions.keboola import KeboolaAction
from polling.actions.script import ScriptAction
from polling.actions.webhook import WebhookAction
from teckochecker.integrations import Rejected

REGISTRY: dict[str, Action] = {
    KeboolaAction.type: KeboolaAction(),
    WebhookAction.type: WebhookAction(),
    ScriptAction.type: ScriptAction(),
}


def get_action(action_type: str) -> Action:
    try:
        return REGISTRY[action_type]
    except KeyError:
        raise Rejected(f"Unknown action type '{action_type}'.") from None


__all__ = [
    "REGISTRY",
    "Action",
    "ActionResult",
    "TriggerMetadata",
    "get_action",
]
