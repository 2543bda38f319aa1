"""Heartbeats of workers and beat, and the health summary shown by /api/health and `status`."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from polling.models import ServiceHeartbeat
from teckochecker.processes import pid_alive

PROCESS_STARTED = time.time()


def heartbeat_record(*, kind: str, name: str | None = None) -> None:
    host = socket.gethostname()
    now = timezone.now()
    name = name or (kind if kind == "beat" else f"{kind}:{host}")
    updated = ServiceHeartbeat.objects.filter(name=name).update(
        kind=kind, hostname=host, pid=os.getpid(), last_seen=now
    )
    if not updated:
        ServiceHeartbeat.objects.get_or_create(
            name=name, defaults={"kind": kind, "hostname": host, "pid": os.getpid(), "last_seen": now}
        )


def heartbeat_mark_started(*, kind: str) -> None:
    heartbeat_record(kind=kind)
    ServiceHeartbeat.objects.filter(kind=kind, hostname=socket.gethostname(), pid=os.getpid()).update(
        started_at=timezone.now()
    )


def _fresh_cutoff():
    return timezone.now() - timedelta(seconds=settings.HEARTBEAT_STALE_SECONDS)


def beat_alive_elsewhere() -> bool:
    """True when another beat (not this process) has been seen alive recently.

    A beat on this machine whose process is gone (killed, crashed) does not count, so a
    restart right after a crash is not refused for HEARTBEAT_STALE_SECONDS.
    """
    beat = ServiceHeartbeat.objects.filter(name="beat", last_seen__gte=_fresh_cutoff()).first()
    if beat is None:
        return False
    if beat.hostname == socket.gethostname():
        return beat.pid != os.getpid() and pid_alive(beat.pid)
    return True


def liveness() -> dict:
    cutoff = _fresh_cutoff()
    beats = list(ServiceHeartbeat.objects.all())
    workers = [b for b in beats if b.kind == "worker"]
    beat = next((b for b in beats if b.name == "beat"), None)
    last_worker = max((w.last_seen for w in workers), default=None)
    return {
        "worker": {
            "alive": any(w.last_seen >= cutoff for w in workers),
            "last_seen": last_worker,
            "count": sum(1 for w in workers if w.last_seen >= cutoff),
        },
        "scheduler": {
            "alive": bool(beat and beat.last_seen >= cutoff),
            "last_seen": beat.last_seen if beat else None,
        },
    }


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return True
    except Exception:
        return False


def broker_ok() -> bool:
    from teckochecker.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        return False


def health_snapshot() -> dict:
    db = database_ok()
    info = {
        "status": "healthy" if db else "unhealthy",
        "timestamp": timezone.now(),
        "database": "connected" if db else "disconnected",
        "version": settings.VERSION,
        "broker": "connected" if broker_ok() else "disconnected",
    }
    if db:
        try:
            info.update(liveness())
        except Exception:
            info["status"] = "unhealthy"
    return info


def uptime_seconds() -> float:
    return round(time.time() - PROCESS_STARTED, 1)
