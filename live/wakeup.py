"""Redis publish/subscribe as the change feed's doorbell (production only).

The change table is the truth; with Redis, a process that commits a write to a watched table
also publishes one message, so the streams' readers look at the table at once instead of at
their next poll. A message that is lost (Redis restarting) costs at most one poll interval,
never an event. Without Redis (the embedded broker) the readers simply poll the table.
"""

from __future__ import annotations

import logging
import re

from django.conf import settings

from live.triggers import WATCHED_TABLES

logger = logging.getLogger("teckochecker.live")

_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)
_TABLES = re.compile("|".join(re.escape(f'"{t}"') for t in sorted(WATCHED_TABLES)))
_client = None


def enabled() -> bool:
    return settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))


def channel() -> str:
    return f"{settings.CELERY_TASK_DEFAULT_QUEUE}:live"


def redis_client():
    """One client per process (redis-py's pool is safe across threads and reconnects)."""
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(
            settings.CELERY_BROKER_URL, socket_timeout=1.0, socket_connect_timeout=1.0
        )
    return _client


def publish() -> None:
    try:
        redis_client().publish(channel(), b"1")
    except Exception as exc:  # only a doorbell: the readers' poll finds the change anyway
        logger.debug("live: could not publish a wake-up: %s", exc)


def _after_write(execute, sql, params, many, context):
    result = execute(sql, params, many, context)
    if _WRITE.match(sql) and _TABLES.search(sql):
        connection = context["connection"]
        # Once per transaction (in autocommit, on_commit runs at once).
        if not any(func is publish for _sids, func, _robust in connection.run_on_commit):
            connection.on_commit(publish)
    return result


def watch_connection(sender, connection, **kwargs) -> None:
    """connection_created: ring the doorbell after every commit that wrote a watched table."""
    if enabled() and _after_write not in connection.execute_wrappers:
        connection.execute_wrappers.append(_after_write)
