"""Beat's scheduler: django-celery-beat's, plus the job dispatcher, a lease that keeps one beat
active across hosts (and is its heartbeat), and the scripts that run "at startup".

The dispatcher (`polling.services.schedules.jobs_dispatch_due`) runs here, in beat's own loop,
every `dispatch_every` seconds: one indexed query finds the due jobs, whatever their number,
instead of one periodic task per job. Running it in beat (not as a task) keeps its rhythm
independent of how full the worker queue is.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import close_old_connections
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)


class SingleBeatScheduler(DatabaseScheduler):
    """Beat that acts only while it holds the beat lease (`beat_lease_hold`): on any number of
    hosts one beat dispatches and runs the periodic tasks, the others stand by and take over
    within HEARTBEAT_STALE_SECONDS of the active one dying."""

    dispatch_every = 1.0

    @property
    def lease_every(self) -> float:
        """How often the active beat renews its lease and a standby one tries to take it."""
        return min(15.0, settings.HEARTBEAT_STALE_SECONDS / 4)

    def setup_schedule(self):
        self.active = False
        self._held_at = self._last_try = self._last_dispatch = 0.0
        super().setup_schedule()
        if self.hold_lease():
            self.run_startup_scripts()

    def hold_lease(self) -> bool:
        """Claim or renew the lease now; log when this beat becomes active or stands by."""
        from polling.services.health import beat_lease_hold

        self._last_try = time.monotonic()
        try:
            held = beat_lease_hold()
        except Exception as exc:  # database restarting: keep trying, stay within the lease
            logger.warning("beat could not renew its lease: %s", exc)
            close_old_connections()
            return self.lease_valid()
        if held:
            self._held_at = self._last_try
        starting = not hasattr(self, "_announced")
        if held != self.active or starting:
            self._announced = True
            # Becoming active or standing by at start is routine; a change later is news.
            log = logger.info if starting else logger.warning
            if held:
                log("beat is active on this host: it dispatches due jobs and runs the periodic tasks")
            else:
                log("beat stands by: another beat is active; this one takes over if that one stops")
        self.active = held
        return held

    def lease_valid(self) -> bool:
        """Acting only within half the lease of the last renewal leaves the other half as a
        margin: a beat that cannot renew (paused, cut off) stops before anyone may take over."""
        return self.active and time.monotonic() - self._held_at < settings.HEARTBEAT_STALE_SECONDS / 2

    def tick(self, *args, **kwargs):
        now = time.monotonic()
        if now - self._last_try >= self.lease_every or (self.active and not self.lease_valid()):
            self.hold_lease()
        if not self.lease_valid():
            return max(0.05, self._last_try + self.lease_every - time.monotonic())
        if now - self._last_dispatch >= self.dispatch_every:
            self._last_dispatch = now
            self.dispatch()
        interval = super().tick(*args, **kwargs)
        until_dispatch = max(0.05, self._last_dispatch + self.dispatch_every - time.monotonic())
        return min(interval, until_dispatch) if interval is not None else until_dispatch

    def close(self):
        super().close()
        if getattr(self, "active", False):
            from polling.services.health import beat_lease_release

            try:
                beat_lease_release()
            except Exception as exc:  # database gone: the lease lapses by itself
                logger.warning("beat could not give up its lease: %s", exc)

    def run_startup_scripts(self) -> int:
        """Queue each "at startup" script once. Here, because beat runs once per service start
        (single-instance), however many workers there are."""
        from scripts.services.schedules import scripts_run_at_startup

        try:
            return scripts_run_at_startup()
        except Exception as exc:  # database restarting: beat starts anyway, the log says so
            logger.warning("could not queue the scripts that run at startup: %s", exc)
            return 0

    def dispatch(self) -> int:
        from polling.services.schedules import jobs_dispatch_due

        try:
            return jobs_dispatch_due()
        except Exception as exc:  # database restarting: the next second tries again
            logger.warning("dispatching due jobs failed: %s", exc)
            close_old_connections()
            return 0
