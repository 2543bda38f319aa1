"""The polling worker's fast lane: webhook confirmations never wait behind routine work, neither
in the broker (a channel of their own) nor in the worker (threads of their own)."""

import signal
import subprocess
import sys
import threading
import time
import types
import uuid

import pytest
from celery.concurrency.thread import TaskPool as ThreadTaskPool
from celery.contrib.testing.worker import start_worker

import teckochecker.celery
from polling.tests.stack import process_env, wait_for
from teckochecker.celery import FastLaneConsumer, FastLaneThreadPool, _fast_lane_for_thread_workers
from teckochecker.tests.lane_worker import CONFIRM, lane_app, queues


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
def app(settings, monkeypatch):
    """A Celery app on the suite's broker (the file broker, or Redis in the PostgreSQL run) with
    queues of its own and the polling worker's fast lane (lane_worker.py), and two tasks: a
    routine one that holds its thread until released and a confirmation."""
    run = uuid.uuid4().hex[:8]
    settings.WEBHOOK_QUEUE = queues(run)[0]
    settings.WORKER_NICE = 0  # the worker runs in this process: leave its priority alone
    app = lane_app(run)
    monkeypatch.setattr(teckochecker.celery, "FAST_LANE_TASKS", frozenset({"lane_test.quick"}))
    app.release, app.started, app.confirmed = threading.Event(), [], threading.Event()

    @app.task(name="lane_test.hold", shared=False)
    def hold(n):
        app.started.append(n)
        app.release.wait(30)

    @app.task(name="lane_test.quick", shared=False)
    def quick():
        app.confirmed.set()

    yield app
    app.release.set()
    purge(app, queues(run))
    # Celery's test worker makes its app the current and default one for the whole process;
    # later tests in this process would otherwise send `shared_task`s through this app.
    teckochecker.celery.app.set_current()
    teckochecker.celery.app.set_default()


def purge(app, names):
    with app.connection_for_write() as conn:
        for queue in names:
            conn.default_channel.queue_purge(queue)
            conn.default_channel.queue_delete(queue)


def test_a_confirmation_runs_promptly_while_routine_work_fills_the_prefetch(app, settings):
    names = [settings.WEBHOOK_QUEUE, app.conf.task_default_queue]  # as `manage.py start`'s -Q
    # The pool `--pool threads` becomes in a worker process (worker_init, tested above).
    with start_worker(app, pool=FastLaneThreadPool, concurrency=2, perform_ping_check=False, queues=names):
        # Twenty slow routine checks: two run, six more fill the prefetch (2 × 4), twelve wait.
        for n in range(20):
            app.tasks["lane_test.hold"].apply_async(args=[n])
        with app.connection_for_write() as conn:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                waiting = conn.default_channel.queue_declare(app.conf.task_default_queue, passive=True)
                if len(app.started) == 2 and waiting.message_count == 12:
                    break
                time.sleep(0.05)
        assert len(app.started) == 2 and waiting.message_count == 12

        app.tasks["lane_test.quick"].apply_async(queue=settings.WEBHOOK_QUEUE)
        # Without a channel of its own the confirmation would be fetched only after routine
        # work had finished, which here is never (released below, after the assertion).
        assert app.confirmed.wait(10)
        assert len(app.started) == 2
        app.release.set()


def test_a_worker_without_the_webhook_queue_is_left_alone(app, settings):
    names = [app.conf.task_default_queue]
    with start_worker(
        app, pool=FastLaneThreadPool, concurrency=2, perform_ping_check=False, queues=names
    ) as w:
        step = next(s for s in w.consumer.blueprint.steps.values() if isinstance(s, FastLaneConsumer))
        assert not step.enabled
        assert set(app.amqp.queues.consume_from) == set(names)


@pytest.mark.slow
def test_sigterm_lets_running_confirmations_finish_and_leaves_fetched_ones_for_the_next_worker(tmp_path):
    """A warm shutdown of a real worker process: the confirmations it runs finish and are
    acknowledged, the ones it fetched but did not start go back to the queue, and the next
    worker runs each of those once."""
    run, notes = uuid.uuid4().hex[:8], tmp_path / "notes"
    webhook_queue, routine_queue = queues(run)
    env = process_env(LANE_RUN=run, LANE_NOTES=str(notes), LANE_SECONDS="2", WORKER_NICE="0")
    argv = [sys.executable, "-m", "celery", "-A", "teckochecker.tests.lane_worker", "worker"]
    argv += ["--pool", "threads", "-c", "2", "-Q", f"{webhook_queue},{routine_queue}", "-l", "info"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    sender = lane_app(run)

    def lines():
        return notes.read_text().splitlines() if notes.exists() else []

    try:
        for n in range(4):  # two run in the lane's two threads (lane_worker.py), two wait in the worker
            sender.tasks[CONFIRM].apply_async(args=[n], queue=webhook_queue)
        log = open(tmp_path / "worker1.log", "wb")  # noqa: SIM115 (closed below)
        first = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(
            lambda: sum(line.startswith("start") for line in lines()) >= 2, timeout=60, message="two started"
        )
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0, (tmp_path / "worker1.log").read_text()[-3000:]
        log.close()
        after_first = lines()
        started = {line.split()[-1] for line in after_first if line.startswith("start")}
        assert {line.split()[-1] for line in after_first if line.startswith("done")} == started

        log = open(tmp_path / "worker2.log", "wb")  # noqa: SIM115 (closed below)
        second = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: len(lines()) >= 8, timeout=60, message="every confirmation done")
            time.sleep(1)  # a confirmation run twice would have started by now
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
            log.close()
        assert sorted(lines()) == sorted(
            [f"start confirm {n}" for n in range(4)] + [f"done confirm {n}" for n in range(4)]
        )
    finally:
        purge(sender, [webhook_queue, routine_queue])


@pytest.mark.django_db(transaction=True)
def test_tasks_keep_their_threads_database_connection_until_it_is_too_old(monkeypatch):
    """Celery's Django fixup closed every connection around every task (a new PostgreSQL server
    process per task); with CELERY_DB_REUSE_MAX set, a thread keeps its connection for
    DB_CONN_MAX_AGE, and a too old one is closed around the next task."""
    from celery.fixups.django import DjangoWorkerFixup
    from django.db import connection

    fixup = DjangoWorkerFixup(teckochecker.celery.app)  # what a worker installs
    task = types.SimpleNamespace(request=types.SimpleNamespace(is_eager=False))

    def run_tasks(count: int) -> None:
        for _ in range(count):
            fixup.on_task_prerun(sender=task)
            teckochecker.celery._close_old_connections(task=task)
            connection.ensure_connection()  # the task's queries
            teckochecker.celery._close_old_connections(task=task)
            fixup.on_task_postrun(sender=task)

    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    connection.close()
    connection.ensure_connection()
    opened = connection.connection
    run_tasks(5)
    assert connection.connection is opened

    connection.close_at = time.monotonic() - 1  # older than DB_CONN_MAX_AGE now
    run_tasks(1)
    assert connection.connection is not opened

    # Without the setting, the fixup closes it around every task.
    fixup.db_reuse_max = None
    opened = connection.connection
    run_tasks(1)
    assert connection.connection is not opened


@pytest.mark.django_db
def test_a_task_run_in_place_leaves_the_callers_connection_alone(settings):
    """`task.apply()` runs where it is called, maybe inside the caller's transaction (as a test
    is): closing the connection around it would break the caller."""
    from django.db import connection
    from django.db.models import F

    from polling.models import PollingJob
    from polling.tasks import prune_logs
    from polling.tests.factories import PollingJobFactory

    job = PollingJobFactory()
    PollingJob.objects.filter(pk=job.pk).update(consecutive_failures=F("consecutive_failures") + 1)
    opened = connection.connection
    prune_logs.apply()
    assert connection.connection is opened and connection.in_atomic_block
    assert PollingJob.objects.get(pk=job.pk).consecutive_failures == job.consecutive_failures + 1
