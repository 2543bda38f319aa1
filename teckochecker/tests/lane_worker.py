"""A Celery app for the fast lane's tests (test_celery.py): the suite's broker, queues of its
own, the polling worker's fast lane, a slow routine task and a slow confirmation that note when
they start and finish. A worker process runs it with LANE_RUN set (`celery -A
teckochecker.tests.lane_worker worker ...`); the tests build it with `lane_app`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teckochecker.test_settings")
django.setup()

from celery import Celery  # noqa: E402
from django.conf import settings  # noqa: E402

import teckochecker.celery  # noqa: E402
from teckochecker.celery import FastLaneConsumer  # noqa: E402

ROUTINE, CONFIRM = "lane_test.routine", "lane_test.confirm"


def queues(run: str) -> tuple[str, str]:
    """(the webhook queue, the routine queue) of a test run."""
    return f"lane-test-{run}-webhooks", f"lane-test-{run}"


def lane_app(run: str, *, notes: Path | None = None, seconds: float = 0.0) -> Celery:
    """The app; its tasks append "start <n>" and "done <n>" to `notes` and take `seconds`."""
    app = Celery(f"lane-test-{run}", set_as_current=False)
    app.conf.update(
        broker_url=settings.CELERY_BROKER_URL,
        broker_transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        task_default_queue=queues(run)[1],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=4,
        worker_enable_remote_control=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    if getattr(settings, "CELERY_BROKER_TRANSPORT", None):
        app.conf.broker_transport = settings.CELERY_BROKER_TRANSPORT
    app.steps["consumer"].add(FastLaneConsumer)

    def note(line: str) -> None:
        if notes is not None:
            with open(notes, "a") as f:
                f.write(f"{line}\n")

    @app.task(name=ROUTINE, shared=False)
    def routine(n: int) -> None:
        note(f"start routine {n}")
        time.sleep(seconds)
        note(f"done routine {n}")

    @app.task(name=CONFIRM, shared=False)
    def confirm(n: int) -> None:
        note(f"start confirm {n}")
        time.sleep(seconds)
        note(f"done confirm {n}")

    return app


if os.environ.get("LANE_RUN"):
    # The worker process: its webhook queue is this run's, and its confirmations take the
    # fast lane's threads, two of them, so that a few confirmations wait in the worker.
    settings.WEBHOOK_QUEUE = queues(os.environ["LANE_RUN"])[0]
    teckochecker.celery.FAST_LANE_TASKS = frozenset({CONFIRM})
    teckochecker.celery.FAST_LANE_THREADS = 2
    app = lane_app(
        os.environ["LANE_RUN"],
        notes=Path(os.environ["LANE_NOTES"]),
        seconds=float(os.environ["LANE_SECONDS"]),
    )
