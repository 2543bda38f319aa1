"""Server-sent event streams: the page's change stream and one script run's output.

Both are plain generators of `Event`s, so `manage.py script run --wait` reads a run exactly as
the page does, without HTTP. The web server bounds how many are open at once (`StreamSlot`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models.functions import Length, Substr

from live import feed
from live.hub import Hub, hub
from live.models import Topic

# A run's output goes out in pieces of at most this many characters.
OUTPUT_CHUNK = 64 * 1024
# A run stream looks at its run at least this often even when no change was announced.
RUN_RECHECK_SECONDS = 5.0
# What EventSource waits before reconnecting after a stream ends (milliseconds).
RETRY_MS = 1000


@dataclass(frozen=True)
class Event:
    """One server-sent event; `name` None is a comment (a heartbeat)."""

    name: str | None
    data: str = ""
    id: int | None = None

    @classmethod
    def of(cls, name: str, value: dict, id: int | None = None) -> Event:
        return cls(name, json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":")), id)

    def encode(self) -> bytes:
        if self.name is None:
            return f": {self.data or 'keepalive'}\n\n".encode()
        lines = [f"id: {self.id}"] if self.id is not None else []
        lines.append(f"event: {self.name}")
        lines += [f"data: {line}" for line in self.data.split("\n")]
        return ("\n".join(lines) + "\n\n").encode()

    @property
    def value(self):
        return json.loads(self.data) if self.data else None


HEARTBEAT = Event(None)

# Set when the web server stops: every open stream ends at its next look.
_stopping = threading.Event()


def stop_streams() -> None:
    _stopping.set()
    h = _hub_if_started()
    if h is not None:
        with h.cond:
            h.cond.notify_all()


def _hub_if_started():
    from live import hub as hub_module

    return hub_module._hub if hub_module._hub.thread is not None else None


def _idle() -> None:
    """Give back the database connection while the stream waits: 50 open streams must not hold
    50 PostgreSQL connections. (Not inside a transaction, e.g. in a test.)"""
    if not connection.in_atomic_block:
        connection.close()


def _clock(max_seconds: float | None) -> Callable[[], float | None]:
    """Seconds left before `max_seconds` from now (None: no limit)."""
    end = None if max_seconds is None else time.monotonic() + max_seconds

    def left() -> float | None:
        if _stopping.is_set():
            return 0.0
        return None if end is None else end - time.monotonic()

    return left


# --- GET /api/events ----------------------------------------------------------------------
def change_events(
    *, after: int | None, max_seconds: float | None = None, heartbeat: float | None = None
) -> Iterator[Event]:
    """Every change after event id `after` (None: from now on), then live ones until
    `max_seconds`. First `ready` (from now on) or, when `after` is older than the kept
    changes, `reset`: the client missed changes and reloads what it shows."""
    heartbeat = heartbeat or settings.LIVE_HEARTBEAT_SECONDS
    left = _clock(max_seconds)
    h = hub()
    h.acquire()
    try:
        yield from _changes(h, after, left, heartbeat)
    finally:
        h.release()


def _changes(h: Hub, after: int | None, left, heartbeat: float) -> Iterator[Event]:
    if after is None:
        cursor = h.last
        yield Event.of("ready", {"last_event_id": cursor}, id=cursor)
    else:
        cursor = after
        if h.after(cursor) is None:
            low, high = feed.changes_bounds()
            if cursor > high or (low is not None and cursor + 1 < low):
                cursor = high
                yield Event.of("reset", {"last_event_id": cursor}, id=cursor)
    yield from _follow(h, cursor, left, heartbeat)


def _follow(h: Hub, cursor: int, left, heartbeat: float) -> Iterator[Event]:
    next_beat = time.monotonic() + heartbeat
    while (remaining := left()) is None or remaining > 0:
        batch = h.after(cursor)
        if batch is None:  # further back than the hub keeps: from the table
            batch = feed.changes_read(after=cursor)
            _idle()
        for entry in batch:
            cursor = entry.id
            if entry.data is not None:
                yield Event(entry.topic, entry.data, id=entry.id)
        if batch:
            continue
        now = time.monotonic()
        if now >= next_beat:
            yield HEARTBEAT
            next_beat = now + heartbeat
        wait = next_beat - now if remaining is None else min(next_beat - now, remaining)
        h.wait(cursor, max(0.0, wait))


# --- GET /api/runs/{id}/stream ------------------------------------------------------------
def _run_state(run_id: int) -> dict | None:
    from scripts.models import ScriptRun

    return ScriptRun.objects.filter(pk=run_id).annotate(size=Length("output")).values("state", "size").first()


def _output_after(run_id: int, offset: int) -> str:
    from scripts.models import ScriptRun

    rest = (
        ScriptRun.objects.filter(pk=run_id)
        .annotate(rest=Substr("output", offset + 1))
        .values_list("rest", flat=True)
        .first()
    )
    return rest or ""


def _final(run_id: int) -> dict:
    from scripts.serializers import run_representation
    from scripts.services import run_get

    return run_representation(run_get(run_id=run_id))


def run_events(
    *,
    run_id: int,
    after: int = 0,
    wait: Callable[[float], None] | None = None,
    max_seconds: float | None = None,
    heartbeat: float | None = None,
) -> Iterator[Event]:
    """A run's output from character `after` on, as it is stored, then its final state.

    `output` events carry a piece of text; their id is the output's length after it, so a
    client resuming from an id gets exactly the rest. `state` says queued or running (again
    after a reconnect); `end` is the finished run (as GET /api/runs/{id}, without output), after
    which the stream ends. A heartbeat comes every `heartbeat` seconds without news. `wait`
    replaces waiting for the change feed (tests stand in for the worker with it)."""
    heartbeat = heartbeat or settings.LIVE_HEARTBEAT_SECONDS
    left = _clock(max_seconds)
    h = hub() if wait is None else None
    if h is None:
        yield from _run(run_id, after, wait, None, left, heartbeat)
        return
    h.acquire()
    try:
        yield from _run(run_id, after, wait, h, left, heartbeat)
    finally:
        h.release()


def _run(run_id: int, after: int, wait, h: Hub | None, left, heartbeat: float) -> Iterator[Event]:
    from scripts.models import FINISHED_RUN_STATES

    cursor = h.last if h else 0
    offset, state_sent = after, None
    next_beat = time.monotonic() + heartbeat
    while True:
        row = _run_state(run_id)
        if row is None:
            yield Event.of("end", {"id": run_id, "deleted": True})
            return
        if row["size"] > offset:
            text = _output_after(run_id, offset)
            for start in range(0, len(text), OUTPUT_CHUNK):
                piece = text[start : start + OUTPUT_CHUNK]
                offset += len(piece)
                yield Event.of("output", {"text": piece}, id=offset)
        if row["state"] in FINISHED_RUN_STATES:
            yield Event.of("end", _final(run_id))
            return
        if row["state"] != state_sent:
            state_sent = row["state"]
            yield Event.of("state", {"id": run_id, "state": state_sent})
        remaining = left()
        if remaining is not None and remaining <= 0:
            return
        now = time.monotonic()
        if now >= next_beat:
            yield HEARTBEAT
            next_beat = now + heartbeat
        _idle()
        timeout = min(next_beat - now, RUN_RECHECK_SECONDS, remaining if remaining is not None else heartbeat)
        if wait is not None:
            wait(max(0.0, timeout))
        else:
            cursor = _wait_for_run(h, cursor, run_id, max(0.0, timeout))


def _wait_for_run(h: Hub, cursor: int, run_id: int, timeout: float) -> int:
    """Wait until the feed announces a change of the run or `timeout` passes (then the stream
    looks anyway: one small query). Returns the new cursor."""
    end = time.monotonic() + timeout
    while True:
        batch = h.after(cursor)
        if batch is None:
            return h.last
        if batch:
            cursor = batch[-1].id
            if any(e.object_id == run_id and e.topic in (Topic.RUN, Topic.OUTPUT) for e in batch):
                return cursor
        remaining = end - time.monotonic()
        if remaining <= 0:
            return cursor
        h.wait(cursor, remaining)


# --- the web server's bound on open streams -----------------------------------------------
class StreamsBusy(Exception):
    pass


_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()


def _semaphore() -> threading.BoundedSemaphore:
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(settings.LIVE_MAX_STREAMS)
        return _slots


class StreamSlot:
    """An open stream's place among LIVE_MAX_STREAMS: taken now (StreamsBusy when none is
    free), given back when the response is closed, whether or not it was ever read. Each
    stream holds a web server thread, so the bound keeps threads free for the rest of the API."""

    def __init__(self, events: Iterator[Event]):
        if not _semaphore().acquire(blocking=False):
            raise StreamsBusy
        self.events = events
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield f"retry: {RETRY_MS}\n\n".encode()
        for event in self.events:
            yield event.encode()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.events.close()
            _semaphore().release()
