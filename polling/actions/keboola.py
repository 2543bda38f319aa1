"""The Keboola action: run a component configuration with the batch metadata as variables."""

from __future__ import annotations

from datetime import datetime, timedelta

from polling.actions.base import ActionResult, TriggerMetadata
from polling.integrations import keboola as keboola_api


class KeboolaAction:
    type = "keboola"
    secret_field = "keboola_secret"

    def payload(self, job, meta: TriggerMetadata) -> dict:
        return keboola_api.build_trigger_payload(
            component_id=job.keboola_component_id,
            configuration_id=job.keboola_configuration_id,
            completed_batch_ids=meta.completed,
            failed_batch_ids=meta.failed,
        )

    def send(self, job, meta: TriggerMetadata, *, secret: str | None) -> ActionResult:
        created = keboola_api.create_job(
            stack_url=job.keboola_stack_url, token=secret or "", payload=self.payload(job, meta)
        )
        return ActionResult(reference=created.id, url=created.url, status=created.status)

    def find(self, job, meta: TriggerMetadata, *, secret: str | None, since: datetime) -> ActionResult | None:
        """Keboola has no idempotency key: find our job by component, config and exact variables."""
        found = keboola_api.search_jobs(
            stack_url=job.keboola_stack_url,
            token=secret or "",
            component_id=job.keboola_component_id,
            configuration_id=job.keboola_configuration_id,
            created_after=since - timedelta(minutes=5),
        )
        wanted = self.payload(job, meta)["variableValuesData"]["values"]
        matches = sorted(
            (j for j in found if j.variable_values == wanted),
            key=lambda j: (j.created_time is None, j.created_time),
        )
        if not matches:
            return None
        return ActionResult(reference=matches[0].id, url=matches[0].url, status=matches[0].status)
