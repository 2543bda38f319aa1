"""One reader of the change feed per process, shared by every open stream.

The hub reads the changes after the last one it has seen (one indexed query), keeps the
recent ones in memory and wakes the streams waiting for news. It reads when Redis rings
(production, see `live.wakeup`) and otherwise every LIVE_POLL_SECONDS, so 50 open streams cost
one query per interval, not fifty. A stream whose cursor is older than what the hub keeps
reads its catch-up from the table itself (`live.feed.changes_read`), then continues here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from django.conf import settings
from django.db import connection

from live import feed, wakeup

logger = logging.getLogger("teckochecker.live")

KEEP = 5000  # changes kept in memory for the streams
# With no stream open for this long the hub stops reading (and building events nobody gets)
# until the next stream opens.
IDLE_SECONDS = 60.0


class Hub:
    def __init__(self):
        self.cond = threading.Condition()
        self.recent: deque[feed.Entry] = deque()
        self.floor: int | None = None  # every change after this id is in `recent`
        self.last = 0  # the newest change id seen
        self.thread: threading.Thread | None = None
        self.error: str | None = None
        self.stopping = threading.Event()
        self.users = 0
        self.idle_since = time.monotonic()

    # --- the streams' side ---------------------------------------------------------------
    def start(self) -> None:
        with self.cond:
            if self.thread is not None and self.thread.is_alive():
                return
            self.idle_since = time.monotonic()
            self.thread = threading.Thread(target=self._run, name="live-hub", daemon=True)
            self.thread.start()
            # The first read sets the floor; streams wait for it (briefly) so none starts blind.
            self.cond.wait_for(lambda: self.floor is not None, timeout=5)

    def acquire(self) -> None:
        """A stream starts using the hub: it reads (again, after an idle pause) before this
        returns, so the stream's starting point is current."""
        with self.cond:
            self.users += 1
            self.cond.notify_all()
            self.cond.wait_for(lambda: self.floor is not None, timeout=5)

    def release(self) -> None:
        with self.cond:
            self.users -= 1
            if self.users == 0:
                self.idle_since = time.monotonic()

    def _pause_while_idle(self) -> None:
        with self.cond:
            if self.users > 0 or time.monotonic() - self.idle_since < IDLE_SECONDS:
                return
            # What the hub kept goes stale while it does not read: a stream after the pause
            # starts from a fresh first read (acquire waits for it).
            self.floor = None
            self.recent.clear()
            self.cond.wait_for(lambda: self.users > 0 or self.stopping.is_set())

    def stop(self) -> None:
        """End the reader and its database connection (a test database cannot be dropped while
        a connection to it is open)."""
        thread = self.thread
        if thread is None:
            return
        self.stopping.set()
        with self.cond:
            self.cond.notify_all()
        thread.join(timeout=10)
        with self.cond:
            self.thread, self.floor, self.last = None, None, 0
            self.recent.clear()
        self.stopping.clear()

    def after(self, cursor: int) -> list[feed.Entry] | None:
        """The kept changes after `cursor`; None when the hub does not keep them all (read the
        table instead)."""
        with self.cond:
            if self.floor is None or cursor < self.floor:
                return None
            if cursor >= self.last:
                return []
            return [e for e in self.recent if e.id > cursor]

    def wait(self, cursor: int, timeout: float) -> bool:
        """Block until a change after `cursor` is known or `timeout` passes; True if one is."""
        from live.streams import _stopping

        with self.cond:
            return self.cond.wait_for(lambda: self.last > cursor or _stopping.is_set(), timeout=timeout)

    # --- the reader ----------------------------------------------------------------------
    def _read(self) -> None:
        if self.floor is None:
            _low, high = feed.changes_bounds()
            with self.cond:
                self.floor = self.last = high
                self.cond.notify_all()
            return
        while True:
            batch = feed.changes_read(after=self.last)
            if not batch:
                return
            with self.cond:
                self.recent.extend(batch)
                self.last = batch[-1].id
                while len(self.recent) > KEEP:
                    self.floor = self.recent.popleft().id
                self.cond.notify_all()
            if len(batch) < feed.READ_LIMIT:
                return

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            connection.close()

    def _loop(self) -> None:
        pubsub = None
        while not self.stopping.is_set():
            self._pause_while_idle()
            if self.stopping.is_set():
                return
            try:
                self._read()
                self.error = None
            except Exception as exc:  # the database restarting: say so once, try again
                if self.error != str(exc):
                    logger.warning("live: cannot read the change feed: %s", exc)
                self.error = str(exc)
                connection.close()
                self.stopping.wait(1.0)
                continue
            pubsub = self._wait_for_news(pubsub)

    def _wait_for_news(self, pubsub):
        interval = settings.LIVE_POLL_SECONDS
        if not wakeup.enabled():
            self.stopping.wait(interval)
            return None
        try:
            if pubsub is None:
                pubsub = wakeup.redis_client().pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(wakeup.channel())
            message = pubsub.get_message(timeout=interval)
            # Several writes in a burst: one read covers them all.
            while message is not None:
                message = pubsub.get_message(timeout=0)
            return pubsub
        except Exception as exc:
            logger.debug("live: Redis wake-ups unavailable (%s); polling", exc)
            self.stopping.wait(interval)
            return None


_hub = Hub()


def hub() -> Hub:
    """This process's hub, started on first use (after gunicorn's fork, in the worker)."""
    _hub.start()
    return _hub


def stop() -> None:
    _hub.stop()
