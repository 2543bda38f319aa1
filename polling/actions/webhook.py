"""The webhook action: POST the batch metadata as JSON to a URL, with an optional secret header.

Receivers get a stable `Idempotency-Key` per job: after an unknown outcome (timeout, 5xx) the
same request is sent again with the same key, so a receiver that honours it acts once.
"""

from __future__ import annotations

from datetime import datetime

from polling.actions.base import ActionResult, TriggerMetadata
from polling.integrations import webhooks

SECRET_HEADER = "X-TeckoChecker-Secret"


def metadata_json(job, meta: TriggerMetadata) -> dict:
    return {
        "event": "batches.finished",
        "job_id": job.pk,
        "job_name": job.name,
        "batch_ids_completed": meta.completed,
        "batch_ids_failed": meta.failed,
        "batch_count_total": meta.total,
        "batch_count_completed": len(meta.completed),
        "batch_count_failed": len(meta.failed),
    }


class WebhookAction:
    type = "webhook"
    secret_field = "action_secret"

    def send(self, job, meta: TriggerMetadata, *, secret: str | None) -> ActionResult:
        response = webhooks.post_json(
            url=job.action_url,
            payload=metadata_json(job, meta),
            headers={SECRET_HEADER: secret} if secret else None,
            idempotency_key=f"teckochecker-job-{job.pk}",
        )
        return ActionResult(reference=f"HTTP {response.status_code}", status="delivered")

    def find(self, job, meta: TriggerMetadata, *, secret: str | None, since: datetime) -> ActionResult | None:
        # A generic receiver cannot be asked; resending with the same Idempotency-Key is the way.
        return None
