"""The polling worker's fast lane: webhook confirmations never wait behind routine work, neither
in the broker (a channel of their own) nor in the worker (threads of their own)."""

import threading
import time
import types
import uuid

import pytest
from celery import Celery
from celery.concurrency.thread import TaskPool as ThreadTaskPool
from celery.contrib.testing.worker import start_worker

import teckochecker.celery
from teckochecker.celery import FastLaneConsumer, FastLaneThreadPool, _fast_lane_for_thread_workers


def test_a_confirmation_runs_while_every_routine_thread_is_busy():
    pool = FastLaneThreadPool(limit=1)
    release, ran = threading.Event(), threading.Event()

    def target(name, *args):
        if name == "polling.tasks.confirm_job":
            ran.set()
        else:
            release.wait(10)

    try:
        pool.on_apply(target, args=("polling.tasks.poll_jobs", "id-1"))
        pool.on_apply(target, args=("polling.tasks.poll_jobs", "id-2"))  # queued behind the first
        pool.on_apply(target, args=("polling.tasks.confirm_job", "id-3"))
        assert ran.wait(10)
    finally:
        release.set()
        pool.on_stop()


def test_thread_workers_get_the_fast_lane_and_other_pools_are_left_alone():
    threads = types.SimpleNamespace(pool_cls=ThreadTaskPool)
    _fast_lane_for_thread_workers(sender=threads)
    assert threads.pool_cls is FastLaneThreadPool
    other = types.SimpleNamespace(pool_cls=object)
    _fast_lane_for_thread_workers(sender=other)
    assert other.pool_cls is object


@pytest.fixture
def lane_app(settings, monkeypatch):
    """A Celery app on the suite's broker (the file broker, or Redis in the PostgreSQL run) with
    queues of its own and the polling worker's fast lane, and two tasks: a slow routine one and
    a confirmation."""
    run = uuid.uuid4().hex[:8]
    settings.WEBHOOK_QUEUE = f"lane-test-{run}-webhooks"
    settings.WORKER_NICE = 0  # the worker runs in this process: leave its priority alone
    app = Celery(f"lane-test-{run}", set_as_current=False)
    app.conf.update(
        broker_url=settings.CELERY_BROKER_URL,
        broker_transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        task_default_queue=f"lane-test-{run}",
        task_acks_late=True,
        worker_prefetch_multiplier=4,
        worker_enable_remote_control=False,
        broker_connection_retry_on_startup=True,
    )
    if getattr(settings, "CELERY_BROKER_TRANSPORT", None):
        app.conf.broker_transport = settings.CELERY_BROKER_TRANSPORT
    app.steps["consumer"].add(FastLaneConsumer)
    monkeypatch.setattr(teckochecker.celery, "FAST_LANE_TASKS", frozenset({"lane_test.confirm"}))
    app.release, app.started, app.confirmed = threading.Event(), [], threading.Event()

    @app.task(name="lane_test.routine", acks_late=True, shared=False)
    def routine(n):
        app.started.append(n)
        app.release.wait(30)

    @app.task(name="lane_test.confirm", acks_late=True, shared=False)
    def confirm_task():
        app.confirmed.set()

    yield app
    app.release.set()
    with app.connection_for_write() as conn:
        for queue in (app.conf.task_default_queue, settings.WEBHOOK_QUEUE):
            conn.default_channel.queue_purge(queue)
            conn.default_channel.queue_delete(queue)


def test_a_confirmation_runs_promptly_while_routine_work_fills_the_prefetch(lane_app, settings):
    queues = [settings.WEBHOOK_QUEUE, lane_app.conf.task_default_queue]  # as `manage.py start`'s -Q
    # The pool `--pool threads` becomes in a worker process (worker_init, tested above).
    with start_worker(
        lane_app, pool=FastLaneThreadPool, concurrency=2, perform_ping_check=False, queues=queues
    ):
        # Twenty slow routine checks: two run, six more fill the prefetch (2 × 4), twelve wait.
        for n in range(20):
            lane_app.tasks["lane_test.routine"].apply_async(args=[n])
        with lane_app.connection_for_write() as conn:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                waiting = conn.default_channel.queue_declare(lane_app.conf.task_default_queue, passive=True)
                if len(lane_app.started) == 2 and waiting.message_count == 12:
                    break
                time.sleep(0.05)
        assert len(lane_app.started) == 2 and waiting.message_count == 12

        lane_app.tasks["lane_test.confirm"].apply_async(queue=settings.WEBHOOK_QUEUE)
        # Without a channel of its own the confirmation would be fetched only after routine
        # work had finished, which here is never (released below, after the assertion).
        assert lane_app.confirmed.wait(10)
        assert len(lane_app.started) == 2
        lane_app.release.set()


def test_a_worker_without_the_webhook_queue_is_left_alone(lane_app, settings):
    queues = [lane_app.conf.task_default_queue]
    with start_worker(lane_app, pool="threads", concurrency=2, perform_ping_check=False, queues=queues) as w:
        step = next(s for s in w.consumer.blueprint.steps.values() if isinstance(s, FastLaneConsumer))
        assert not step.enabled
        assert set(lane_app.amqp.queues.consume_from) == set(queues)
