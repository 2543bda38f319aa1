"""Beat's scheduler: django-celery-beat's, plus a heartbeat and a single-instance guard."""

from __future__ import annotations

import logging
import time

from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)


class SingleBeatScheduler(DatabaseScheduler):
    heartbeat_every = 15.0

    def setup_schedule(self):
        from polling.services.health import beat_alive_elsewhere, heartbeat_mark_started

        if beat_alive_elsewhere():
            raise SystemExit("Another beat is already running against this database; only one may run.")
        heartbeat_mark_started(kind="beat")
        self._last_heartbeat = time.monotonic()
        super().setup_schedule()

    def tick(self, *args, **kwargs):
        now = time.monotonic()
        if now - getattr(self, "_last_heartbeat", 0) >= self.heartbeat_every:
            from polling.services.health import heartbeat_record

            try:
                heartbeat_record(kind="beat")
            except Exception as exc:  # database restarting: beat keeps going, health shows it
                logger.warning("beat heartbeat failed: %s", exc)
            self._last_heartbeat = now
        return super().tick(*args, **kwargs)
