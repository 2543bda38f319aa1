"""The Celery app. Workers and beat load Django settings (CELERY_* names) from here."""

import os
import signal
import warnings
from concurrent.futures import ThreadPoolExecutor

from celery import Celery, bootsteps
from celery.concurrency.base import apply_target
from celery.concurrency.thread import ApplyResult as ThreadApplyResult
from celery.concurrency.thread import TaskPool as ThreadTaskPool
from celery.signals import worker_init
from click import Option

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teckochecker.settings")
# Celery's Django fixup runs Django's system checks when a worker or beat starts; the URL checks
# import the whole URLconf (DRF, drf-spectacular, the admin, the views): about 20 MB in every
# Celery process for nothing they use. `manage.py start`, `migrate` and `check` run the checks.
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")
if os.environ.get("TECKOCHECKER_SUPERVISED"):
    # `manage.py start` says in one line what running as root means; Celery's banner about it
    # would repeat that in every worker.
    from celery.exceptions import SecurityWarning

    warnings.filterwarnings("ignore", category=SecurityWarning)

app = Celery("teckochecker")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class ThreadedBeat(bootsteps.StartStopStep):
    """`celery worker --beat-thread`: beat runs as a thread of the worker.

    Celery's own `-B` forks a beat process, which costs as much memory as a worker of its own;
    `manage.py start` runs everything on one machine, so one process does both. If beat stops
    (it crashed), the worker stops as well, so that its supervisor sees it and restarts or gives
    up, as it would for a beat process."""

    label = "Beat (thread)"
    conditional = True

    def __init__(self, worker, beat_thread: bool = False, **kwargs):
        self.enabled = bool(beat_thread)
        super().__init__(worker, **kwargs)

    def create(self, worker):
        from celery.beat import _Threaded

        step = self

        class Service(_Threaded):
            def run(self):
                try:
                    super().run()
                finally:
                    if not step.stopping:
                        os.kill(os.getpid(), signal.SIGTERM)  # a warm shutdown of the worker

        self.stopping = False
        return Service(
            worker.app,
            max_interval=1,
            scheduler_cls=worker.scheduler,
            schedule_filename=worker.schedule_filename,
        )

    def stop(self, worker):
        self.stopping = True
        super().stop(worker)

    def terminate(self, worker):
        self.stopping = True
        super().terminate(worker)


app.user_options["worker"].add(
    Option(["--beat-thread"], is_flag=True, default=False, help="Run beat as a thread of this worker.")
)
app.steps["worker"].add(ThreadedBeat)


# Tasks that must not wait behind the routine work a worker has already taken on: webhook
# confirmations (polling/services/confirm.py). They arrive on WEBHOOK_QUEUE, which the worker
# fetches first, and run in threads of their own (FAST_LANE_THREADS per worker process).
FAST_LANE_TASKS = frozenset({"polling.tasks.confirm_job"})
FAST_LANE_THREADS = 2


class FastLaneThreadPool(ThreadTaskPool):
    """Celery's thread pool with a second, small executor for FAST_LANE_TASKS.

    A worker reserves up to concurrency × CELERY_PREFETCH messages and the thread pool runs them
    in arrival order, so a confirmation fetched behind two dozen routine checks would wait for
    all of them. Here it starts as soon as it is fetched. Everything else is unchanged."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fast_lane = ThreadPoolExecutor(max_workers=FAST_LANE_THREADS, thread_name_prefix="fast-lane")

    def on_stop(self) -> None:
        self.fast_lane.shutdown(cancel_futures=True)
        super().on_stop()

    def on_apply(self, target, args=None, kwargs=None, callback=None, accept_callback=None, **options):
        # Celery calls the pool with (task name, id, request, body, ...) as the target's args.
        if args and args[0] in FAST_LANE_TASKS:
            future = self.fast_lane.submit(apply_target, target, args, kwargs, callback, accept_callback)
            return ThreadApplyResult(future)
        return super().on_apply(target, args, kwargs, callback, accept_callback, **options)


@worker_init.connect
def _fast_lane_for_thread_workers(sender=None, **_kwargs) -> None:
    """`--pool threads` gets the fast lane (the command lines keep Celery's own pool name)."""
    if sender is not None and sender.pool_cls is ThreadTaskPool:
        sender.pool_cls = FastLaneThreadPool


@worker_init.connect
def _lower_worker_priority(**_kwargs) -> None:
    """Polling is background work: a busy worker must not slow the API (WORKER_NICE, 0 = off)."""
    from django.conf import settings

    if settings.WORKER_NICE:
        os.nice(settings.WORKER_NICE)
