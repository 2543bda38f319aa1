"""Celery tasks: thin wrappers that take ids and call one service.

Runs and environment builds go to SCRIPTS_QUEUE (the senders pass `queue=`), so a slow script
never delays polling; the scheduled trigger, the reaper and the pruner are light and go to the
default queue.
"""

from __future__ import annotations

import socket

from celery import shared_task


@shared_task(
    bind=True, name="scripts.tasks.run_script", acks_late=True, ignore_result=True, max_retries=None
)  # bounded: runs.ENV_WAIT_SECONDS
def run_script(self, run_id: int) -> str:
    from scripts.services.runs import run_execute

    outcome = run_execute(run_id=run_id, worker=self.request.hostname or socket.gethostname())
    if outcome == "waiting":  # the environment is being built: look again shortly, never sleep
        from django.conf import settings

        raise self.retry(countdown=2, queue=settings.SCRIPTS_QUEUE)
    return outcome


@shared_task(name="scripts.tasks.build_environment", acks_late=True, ignore_result=True)
def build_environment(script_id: int, token: str) -> str:
    from scripts.services.environments import environment_build_now

    return environment_build_now(script_id=script_id, token=token)


@shared_task(name="scripts.tasks.scheduled_run", ignore_result=True)
def scheduled_run(script_id: int) -> int | None:
    from scripts.services.runs import run_scheduled

    run = run_scheduled(script_id=script_id)
    return run.pk if run else None


@shared_task(name="scripts.tasks.reap_runs", ignore_result=True)
def reap_runs() -> dict:
    from scripts.services.runs import runs_reap

    return runs_reap()


@shared_task(name="scripts.tasks.prune_runs", ignore_result=True)
def prune_runs() -> int:
    from scripts.services.runs import runs_prune

    return runs_prune()
