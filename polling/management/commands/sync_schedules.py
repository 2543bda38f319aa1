"""`manage.py sync_schedules`: repair every job's schedule (idempotent; run on deploy)."""

from __future__ import annotations

from polling.services.schedules import schedules_sync_all
from teckochecker.cli import TeckoCommand


class Command(TeckoCommand):
    help = (
        "Give every active job a due time and release dispatch leases of inactive jobs "
        "(beat's dispatcher reads the due times)."
    )

    def handle(self, *args, **options) -> None:
        counts = schedules_sync_all()
        self.success(f"✓ Schedules in step with {counts['jobs']} job(s): {counts['changed']} repaired")
