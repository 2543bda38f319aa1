"""`manage.py sync_schedules`: repair every job's and every script's schedule (idempotent; run
on deploy)."""

from __future__ import annotations

from polling.services.schedules import schedules_sync_all
from scripts.services import schedules_sync_all as script_schedules_sync_all
from teckochecker.cli import TeckoCommand


class Command(TeckoCommand):
    help = (
        "Give every active job a due time and release dispatch leases of inactive jobs "
        "(beat's dispatcher reads the due times); make each script's periodic task match it."
    )

    def handle(self, *args, **options) -> None:
        counts = schedules_sync_all()
        self.success(f"✓ Schedules in step with {counts['jobs']} job(s): {counts['changed']} repaired")
        scripts = script_schedules_sync_all()
        if scripts["scripts"] or scripts["removed"]:  # a polling-only install hears nothing new
            self.success(
                f"✓ Script schedules in step with {scripts['scripts']} script(s): "
                f"{scripts['removed']} left-over periodic task(s) removed"
            )
