"""The polling worker's thread pool: webhook confirmations never wait behind routine work."""

import threading
import types

from celery.concurrency.thread import TaskPool as ThreadTaskPool

from teckochecker.celery import FastLaneThreadPool, _fast_lane_for_thread_workers


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
