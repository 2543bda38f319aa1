"""How services hand work to Celery: by task name, so a service never imports a tasks module.

Tasks import services (they are thin wrappers around them); services only name the task they
want run. The task is looked up in the app's registry, so it is sent with the options it
declares, as if imported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from django.db import transaction

logger = logging.getLogger(__name__)
_loading = threading.Lock()


def task_send(
    name: str,
    *,
    args: Sequence[Any] = (),
    kwargs: dict[str, Any] | None = None,
    queue: str = "",
    countdown: float = 0,
) -> bool:
    """Send task `name` now (to `queue`, else the default queue), to run `countdown` seconds
    from now. False, with a warning in the log, when the broker cannot take it: callers decide
    what waiting for the next try means."""
    from teckochecker.celery import app

    if name not in app.tasks:
        # Only a worker imports the apps' tasks modules by itself (autodiscovery waits for its
        # start); a web or manage.py process loads them here, the first time it sends. Under the
        # lock: autodiscovery runs once, and a second thread would find nothing left to import
        # while the first is still importing.
        with _loading:
            if name not in app.tasks:
                app.loader.import_default_modules()
    task = app.tasks[name]
    options: dict[str, Any] = {"queue": queue} if queue else {}
    if countdown:
        options["countdown"] = countdown
    try:
        task.apply_async(args=list(args), kwargs=dict(kwargs or {}), **options)
    except Exception as exc:  # the broker is down or restarting
        # Arguments stay out of the log: a caller may pass anything, the task name says enough.
        logger.warning("could not send task %s: %s", name, exc)
        return False
    return True


def task_send_on_commit(
    name: str, *, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None, queue: str = ""
) -> None:
    """Send task `name` once the current transaction commits (never, if it rolls back), so the
    worker finds the rows the task is about. A broker that is down is logged, never raised."""

    def _send() -> None:
        task_send(name, args=args, kwargs=kwargs, queue=queue)

    transaction.on_commit(_send)
