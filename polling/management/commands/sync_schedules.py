"""`manage.py sync_schedules`: rebuild every job's periodic task (idempotent; run on deploy)."""

from __future__ import annotations

from polling.services.schedules import schedules_sync_all
from teckochecker.cli import TeckoCommand


class Command(TeckoCommand):
    help = "Create, fix or remove the periodic tasks so there is exactly one per job, matching the job."

    def handle(self, *args, **options) -> None:
        counts = schedules_sync_all()
        self.success(
            f"✓ Schedules in step with {counts['jobs']} job(s): {counts['changed']} created or updated, "
            f"{counts['removed']} orphaned removed"
        )
