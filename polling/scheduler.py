"""Beat's scheduler: django-celery-beat's, plus the job dispatcher, a heartbeat, a
single-instance guard and the scripts that run "at startup".

The dispatcher (`polling.services.schedules.jobs_dispatch_due`) runs here, in beat's own loop,
every `dispatch_every` seconds: one indexed query finds the due jobs, whatever their number,
instead of one periodic task per job. Running it in beat (not as a task) keeps its rhythm
independent of how full the worker queue is.
"""

from __future__ import annotations

import logging
import time

from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)


class SingleBeatScheduler(DatabaseScheduler):
    heartbeat_every = 15.0
    dispatch_every = 1.0

    def setup_schedule(self):
        from polling.services.health import beat_alive_elsewhere, heartbeat_mark_started

        if beat_alive_elsewhere():
            raise SystemExit("Another beat is already running against this database; only one may run.")
        heartbeat_mark_started(kind="beat")
        self._last_heartbeat = time.monotonic()
        self._last_dispatch = 0.0
        super().setup_schedule()
        self.run_startup_scripts()

    def run_startup_scripts(self) -> int:
        """Queue each "at startup" script once. Here, because beat runs once per service start
        (single-instance), however many workers there are."""
        from scripts.services.schedules import scripts_run_at_startup

        try:
            return scripts_run_at_startup()
        except Exception as exc:  # database restarting: beat starts anyway, the log says so
            logger.warning("could not queue the scripts that run at startup: %s", exc)
            return 0

    def tick(self, *args, **kwargs):
        now = time.monotonic()
        if now - getattr(self, "_last_heartbeat", 0) >= self.heartbeat_every:
            from polling.services.health import heartbeat_record

            try:
                heartbeat_record(kind="beat")
            except Exception as exc:  # database restarting: beat keeps going, health shows it
                logger.warning("beat heartbeat failed: %s", exc)
            self._last_heartbeat = now
        if now - getattr(self, "_last_dispatch", 0) >= self.dispatch_every:
            self._last_dispatch = now
            self.dispatch()
        interval = super().tick(*args, **kwargs)
        until_dispatch = max(0.05, self._last_dispatch + self.dispatch_every - time.monotonic())
        return min(interval, until_dispatch) if interval is not None else until_dispatch

    def dispatch(self) -> int:
        from django.db import close_old_connections

        from polling.services.schedules import jobs_dispatch_due

        try:
            return jobs_dispatch_due()
        except Exception as exc:  # database restarting: the next second tries again
            logger.warning("dispatching due jobs failed: %s", exc)
            close_old_connections()
            return 0
