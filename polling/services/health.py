"""Heartbeats of workers and beat, and the health summary shown by /api/health and `status`."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
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


def _fresh_cutoff():
    return timezone.now() - timedelta(seconds=settings.HEARTBEAT_STALE_SECONDS)


def beat_lease_hold() -> bool:
    """Claim, or renew, the right to be the one active beat; True while this process holds it.

    The `beat` heartbeat row is the lease, whatever host each beat runs on: its holder (host
    name and pid) renews `last_seen`, and another beat takes the row over only once that is
    older than HEARTBEAT_STALE_SECONDS (the holder died or lost the database), or at once when
    the holder was on this host and its process is gone. Each write is a compare-and-set on the
    row as it was read, so of two beats trying at the same moment exactly one wins.
    """
    host, pid, now = socket.gethostname(), os.getpid(), timezone.now()
    row = ServiceHeartbeat.objects.filter(name="beat").values("hostname", "pid", "last_seen").first()
    if row is None:
        try:
            with transaction.atomic():
                ServiceHeartbeat.objects.create(
                    name="beat", kind="beat", hostname=host, pid=pid, started_at=now, last_seen=now
                )
        except IntegrityError:  # another beat created it first
            return False
        return True
    mine = row["hostname"] == host and row["pid"] == pid
    if not mine and row["last_seen"] >= _fresh_cutoff():
        if row["hostname"] != host or pid_alive(row["pid"]):
            return False
    changes = {"kind": "beat", "hostname": host, "pid": pid, "last_seen": now}
    if not mine:
        changes["started_at"] = now
    return ServiceHeartbeat.objects.filter(name="beat", **row).update(**changes) == 1


def beat_lease_release() -> None:
    """Give the lease up if this process holds it (a clean stop): a standby beat on another
    host takes over at its next try instead of waiting HEARTBEAT_STALE_SECONDS."""
    lapsed = timezone.now() - timedelta(seconds=settings.HEARTBEAT_STALE_SECONDS + 1)
    ServiceHeartbeat.objects.filter(name="beat", hostname=socket.gethostname(), pid=os.getpid()).update(
        last_seen=lapsed
    )


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
