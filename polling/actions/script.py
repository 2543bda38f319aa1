"""The script action: run one of the user's scripts once, with the batch metadata as the five
Keboola variable names in its environment, so a batch job's results are processed by the
user's own code.

Exactly once: a script run records the polling job that asked for it, and a job can have at most
one such run (a unique key). A retried or reconciled trigger therefore adopts the run that exists
instead of starting a second one.
"""

from __future__ import annotations

from datetime import datetime

from polling.actions.base import ActionResult, TriggerMetadata
from polling.integrations.keboola import trigger_variables
from teckochecker.integrations import Rejected


def run_environment(meta: TriggerMetadata) -> dict[str, str]:
    """The variables the script gets: the very names and values Keboola would receive."""
    return {v["name"]: v["value"] for v in trigger_variables(completed=meta.completed, failed=meta.failed)}


def _result(run) -> ActionResult:
    return ActionResult(
        reference=f"run {run.pk}", status=run.state, extra={"done": f"Script run {run.pk} queued"}
    )


class ScriptAction:
    type = "script"
    secret_field = ""  # a script's own variables carry any secret it needs

    def send(self, job, meta: TriggerMetadata, *, secret: str | None) -> ActionResult:
        from scripts.models import RunTrigger
        from scripts.services.runs import run_request

        script = job.action_script
        if script is None:
            raise Rejected("The job's script no longer exists.")
        run = run_request(
            script=script, trigger=RunTrigger.JOB, polling_job=job, extra_env=run_environment(meta)
        )
        return _result(run)

    def find(self, job, meta: TriggerMetadata, *, secret: str | None, since: datetime) -> ActionResult | None:
        from scripts.models import ScriptRun

        run = ScriptRun.objects.filter(polling_job=job).first()
        return _result(run) if run is not None else None
