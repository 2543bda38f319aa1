"""The Celery app. Workers and beat load Django settings (CELERY_* names) from here."""

import os
import signal
import warnings
from concurrent.futures import ThreadPoolExecutor

from celery import Celery, bootsteps
from celery.concurrency.base import apply_target
from celery.concurrency.thread import ApplyResult as ThreadApplyResult
from celery.concurrency.thread import TaskPool as ThreadTaskPool
from celery.signals import task_postrun, task_prerun, worker_init
from click import Option
from kombu.common import ignore_errors

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
# fetches on a channel of its own (FastLaneConsumer) and runs in threads of its own
# (FAST_LANE_THREADS per worker process, FastLaneThreadPool).
FAST_LANE_TASKS = frozenset({"polling.tasks.confirm_job"})
# A confirmation mostly waits on OpenAI and maybe Keboola (a read, a trigger: 0.1-0.2 s, a few ms
# of CPU), and at the 2,000-job burst events arrive at about 70 a second: with two threads the
# lane fell behind by seconds (benchmark, docs/BENCHMARKS.md). The threads start with the first
# confirmations, each with its own database connection.
FAST_LANE_THREADS = 8


class FastLaneThreadPool(ThreadTaskPool):
    """Celery's thread pool with a second executor, of FAST_LANE_THREADS, for FAST_LANE_TASKS.

    The thread pool runs what it is given in arrival order, so a confirmation behind two dozen
    routine checks would wait for all of them. Here it starts as soon as it is fetched.
    Everything else is unchanged."""

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


class FastLaneConsumer(bootsteps.ConsumerStep):
    """A worker that consumes WEBHOOK_QUEUE among others takes it on a channel of its own.

    On one channel, every queue of `-Q` shares the prefetch limit (concurrency ×
    CELERY_PREFETCH): once routine checks and sweeps fill it, the broker hands the worker
    nothing more, confirmations included, until routine work finishes (measured at 200 jobs:
    confirmations started 5.2 s after their event at the median, 19.4 s at p95). Here the
    routine consumer no longer listens to WEBHOOK_QUEUE; a second consumer on a second channel
    of the same connection does, with a prefetch limit of its own. Its messages go
    through Celery's own task handler (acknowledgement after the task, retries, countdowns), so
    nothing else about them changes. A worker without another queue (or without
    WEBHOOK_QUEUE) is left as it is."""

    label = "Fast lane"
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c, **kwargs):
        from django.conf import settings

        self.queue = settings.WEBHOOK_QUEUE
        queues = c.app.amqp.queues
        consumed = set(queues.consume_from)
        self.enabled = self.queue in consumed and len(consumed) > 1
        if self.enabled:
            # Before the routine consumer starts: it takes the queues still selected.
            queues.deselect([self.queue])
        self.consumers = None
        super().__init__(c, **kwargs)

    def start(self, c):
        channel = c.connection.channel()
        # As many as the routine consumer may hold (threads × CELERY_PREFETCH): the file broker
        # looks for messages only every polling interval while no channel can take one, so a
        # small limit capped the lane there (measured with 4 at 200 jobs: trigger p95 1.5 s
        # against 0.66 s on the shared channel). The ones waiting for the lane's threads wait
        # in the worker.
        channel.basic_qos(0, max(c.pool.num_processes * c.prefetch_multiplier, FAST_LANE_THREADS), False)
        consumer = c.app.amqp.TaskConsumer(
            channel, queues=[c.app.amqp.queues[self.queue]], on_decode_error=c.on_decode_error
        )
        consumer.on_message = c.create_task_handler()
        consumer.consume()
        self.consumers = [consumer]

    # Like Celery's own task consumer: stop only cancels, so that confirmations still running
    # at a warm shutdown (SIGTERM) are acknowledged on their channel when they finish; the
    # channel closes at shutdown, returning what was fetched but not run to the queue.
    def stop(self, c):
        for consumer in self.consumers or []:
            ignore_errors(c.connection, consumer.cancel)

    def shutdown(self, c):
        self._close(c, cancel_consumers=True)
        self.consumers = None


app.steps["consumer"].add(FastLaneConsumer)


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


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(task=None, **_kwargs) -> None:
    """Around each task, close this thread's database connections that are too old or broken,
    as Django does around a request (CELERY_DB_REUSE_MAX in settings.py says why). Not around
    a task run in place (`apply`): the caller's connection, maybe inside its transaction, is
    the caller's, as Celery's own fixup leaves it."""
    from django.db import close_old_connections

    if task is not None and getattr(task.request, "is_eager", False):
        return
    close_old_connections()
