"""Reading the change feed: the changes after a cursor, each with the event a client gets.

Several changes of one object in one read become one event (the last one, with the object's
state at the time of reading): a client that resumes from any event id it received has seen
every object's latest state up to that id, and never the same change twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Max, Min
from django.utils import timezone

from live.models import Change, Topic

# One read takes at most this many changes (a client far behind catches up in steps).
READ_LIMIT = 500


@dataclass(frozen=True)
class Entry:
    """One change. `data` is the event for GET /api/events (JSON text), None when a later change
    of the same object in the same read carries it or the topic is not sent there."""

    id: int
    topic: str
    object_id: int
    data: str | None


def _dumps(value: dict) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, separators=(",", ":"))


def _jobs(ids: set[int]) -> dict[int, dict]:
    from polling import selectors
    from polling.serializers import job_representation

    return {row["id"]: job_representation(row) for row in selectors.job_rows_by_id(job_ids=ids)}


def _logs(ids: set[int]) -> dict[int, dict]:
    from polling.models import PollingLog
    from polling.serializers import LogWithJobSerializer

    logs = PollingLog.objects.filter(pk__in=ids).select_related("job")
    return {log.pk: LogWithJobSerializer(log).data for log in logs}


def _runs(ids: set[int]) -> dict[int, dict]:
    from scripts.models import ScriptRun
    from scripts.serializers import run_representation

    runs = ScriptRun.objects.filter(pk__in=ids).select_related("script").defer("output", "extra_env")
    return {run.pk: run_representation(run) for run in runs}


def _scripts(ids: set[int]) -> dict[int, dict]:
    from scripts.models import Script

    rows = Script.objects.filter(pk__in=ids).values(
        "id", "name", "slug", "folder", "enabled", "env_state", "env_error", "env_built_at"
    )
    return {
        row["id"]: {
            "id": row["id"],
            "name": row["name"],
            "slug": row["slug"],
            "folder": row["folder"],
            "enabled": row["enabled"],
            "environment": {
                "state": row["env_state"],
                "error": row["env_error"],
                "built_at": row["env_built_at"],
            },
        }
        for row in rows
    }


# What each topic's event holds: the object as the API shows it (a job as GET /api/jobs/{id},
# a run as GET /api/runs/{id} without its output, a log entry as in GET /api/logs).
SNAPSHOTS = {Topic.JOB: _jobs, Topic.LOG: _logs, Topic.RUN: _runs, Topic.SCRIPT: _scripts}


def entries(rows: Iterable[tuple[int, str, int]]) -> list[Entry]:
    """Entries for change rows (id, topic, object_id) in id order, with their events."""
    rows = list(rows)
    last: dict[tuple[str, int], int] = {}
    for change_id, topic, object_id in rows:
        last[(topic, object_id)] = change_id
    wanted: dict[str, set[int]] = {}
    for topic, object_id in last:
        if topic in SNAPSHOTS:
            wanted.setdefault(topic, set()).add(object_id)
    states = {topic: SNAPSHOTS[topic](ids) for topic, ids in wanted.items()}
    out = []
    for change_id, topic, object_id in rows:
        data = None
        if topic in states and last[(topic, object_id)] == change_id:
            state = states[topic].get(object_id)
            data = _dumps(state if state is not None else {"id": object_id, "deleted": True})
        out.append(Entry(change_id, topic, object_id, data))
    return out


def changes_read(*, after: int, limit: int = READ_LIMIT) -> list[Entry]:
    """The changes after id `after`, oldest first, at most `limit`."""
    rows = Change.objects.filter(pk__gt=after).order_by("pk").values_list("pk", "topic", "object_id")[:limit]
    return entries(rows)


def changes_bounds() -> tuple[int | None, int]:
    """(oldest kept change id or None, newest change id or 0)."""
    bounds = Change.objects.aggregate(low=Min("pk"), high=Max("pk"))
    return bounds["low"], bounds["high"] or 0


def changes_prune(*, hours: int | None = None) -> int:
    """Delete changes older than LIVE_HISTORY_HOURS; returns how many. A client that resumes from
    before the oldest kept change gets a `reset` event and reloads what it shows."""
    from django.conf import settings

    hours = hours or settings.LIVE_HISTORY_HOURS
    deleted, _ = Change.objects.filter(created_at__lt=timezone.now() - timedelta(hours=hours)).delete()
    return deleted
