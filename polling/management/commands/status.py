"""`manage.py status [--json]`: is the service running, what are the jobs doing, is the database up."""

from __future__ import annotations

import socket
from datetime import timedelta

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import Min
from django.utils import timezone
from rich.text import Text

from polling import selectors
from polling.models import ServiceHeartbeat
from polling.services import health
from teckochecker.cli import TeckoCommand, details_table, fmt_duration, fmt_time

# Where `manage.py start` serves by default; the supervisor does not record its address.
API_HOST, API_PORT = "127.0.0.1", 8000


def api_server_answers(host: str = API_HOST, port: int = API_PORT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def service_uptime() -> float | None:
    """Seconds since the oldest worker/beat that is still alive started, or None."""
    cutoff = timezone.now() - timedelta(seconds=settings.HEARTBEAT_STALE_SECONDS)
    started = ServiceHeartbeat.objects.filter(last_seen__gte=cutoff).aggregate(first=Min("started_at"))[
        "first"
    ]
    return (timezone.now() - started).total_seconds() if started else None


def gather() -> dict:
    db_ok = health.database_ok()
    info: dict = {
        "service": "stopped",
        "uptime_seconds": None,
        "version": settings.VERSION,
        "database": {"status": "connected" if db_ok else "disconnected", "vendor": connection.vendor},
        "broker": "connected" if health.broker_ok() else "disconnected",
        "api_server": {"url": f"http://{API_HOST}:{API_PORT}", "reachable": api_server_answers()},
        "jobs": None,
        "worker": None,
        "scheduler": None,
    }
    if db_ok:
        info["jobs"] = selectors.job_stats()
        info.update(health.liveness())
        info["uptime_seconds"] = service_uptime()
        alive = [info["worker"]["alive"], info["scheduler"]["alive"]]
        info["service"] = "running" if all(alive) else "degraded" if any(alive) else "stopped"
    return info


def _liveness(part: dict | None, label: str) -> Text:
    if part is None:
        return Text("unknown (database unavailable)")
    seen = fmt_time(part["last_seen"], "never")
    if part["alive"]:
        count = f" ×{part['count']}" if part.get("count", 1) > 1 else ""
        return Text(f"🟢 alive{count} (last seen {seen})")
    return Text(f"🔴 not running (last seen {seen})" if part["last_seen"] else f"🔴 never seen; {label}")


SERVICE_TEXT = {
    "running": "🟢 Running",
    "degraded": "🟡 Degraded (worker or scheduler missing)",
    "stopped": "🔴 Not running (start it with `manage.py start`)",
}


class Command(TeckoCommand):
    help = (
        "Show whether the worker, scheduler, broker and database are up, and how many jobs are in each state."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="Print JSON instead of a table."
        )

    def handle(self, *args, as_json: bool, **options) -> None:
        info = gather()
        if as_json:
            self.write_json(info)
        else:
            self.render(details_table("System Status", self.rows(info)))
        if info["database"]["status"] != "connected":
            raise CommandError("The database is not reachable.")

    @staticmethod
    def rows(info: dict) -> list[tuple[str, object]]:
        uptime = info["uptime_seconds"]
        rows: list[tuple[str, object]] = [
            ("Service", SERVICE_TEXT[info["service"]]),
            ("Uptime", fmt_duration(uptime) if uptime is not None else "-"),
        ]
        jobs = info["jobs"]
        if jobs is not None:
            rows += [
                ("Active Jobs", jobs["active_jobs"]),
                ("Paused Jobs", jobs["paused_jobs"]),
                ("Completed Jobs", jobs["completed_jobs"]),
                ("With Failures", jobs["completed_with_failures_jobs"]),
                ("Failed Jobs", jobs["failed_jobs"]),
                ("Total Jobs", jobs["total_jobs"]),
            ]
        api = info["api_server"]
        db = info["database"]
        rows += [
            ("Worker", _liveness(info["worker"], "start it with `manage.py start`")),
            ("Scheduler", _liveness(info["scheduler"], "start it with `manage.py start`")),
            ("Broker", "Connected" if info["broker"] == "connected" else "🔴 Not reachable"),
            ("API Server", api["url"] if api["reachable"] else f"{api['url']} (not answering)"),
            (
                "Database",
                f"Connected ({db['vendor']})" if db["status"] == "connected" else "🔴 Not reachable",
            ),
            ("Version", info["version"]),
        ]
        return rows
