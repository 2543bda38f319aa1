"""The Celery tasks are thin: ids in, one service call; a run waiting for its environment is
retried on the scripts queue instead of sleeping in a worker slot."""

from datetime import timedelta

import pytest
from celery.exceptions import Retry
from django.conf import settings
from django.utils import timezone

from scripts import tasks
from scripts.models import EnvState, RunState, RunTrigger, ScriptRun
from scripts.tests.factories import ScriptFactory, ScriptRunFactory

pytestmark = pytest.mark.django_db


def test_run_script_retries_on_the_scripts_queue_while_the_environment_builds(monkeypatch):
    run = ScriptRunFactory(script=ScriptFactory(env_state=EnvState.INSTALLING))
    retried = {}

    def fake_retry(**options):
        retried.update(options)
        return Retry()

    monkeypatch.setattr(tasks.run_script, "retry", fake_retry)
    with pytest.raises(Retry):
        tasks.run_script.run(run.pk)
    assert retried == {"countdown": 2, "queue": settings.SCRIPTS_QUEUE}
    run.refresh_from_db()
    assert run.state == RunState.QUEUED


def test_a_run_that_waited_an_hour_for_its_environment_fails_saying_so():
    run = ScriptRunFactory(
        script=ScriptFactory(env_state=EnvState.CREATING), queued_at=timezone.now() - timedelta(hours=2)
    )
    assert tasks.run_script.run(run.pk) == "failed"
    run.refresh_from_db()
    assert run.state == RunState.FAILED and "still being built an hour after" in run.message


def test_run_script_of_a_deleted_run_does_nothing():
    assert tasks.run_script.run(10**9) == "gone"


def test_scheduled_run_queues_a_schedule_run(sent):
    script = ScriptFactory()
    run_id = tasks.scheduled_run.run(script.pk)
    assert ScriptRun.objects.get(pk=run_id).trigger == RunTrigger.SCHEDULE
    assert tasks.scheduled_run.run(script.pk) is None  # skipped: the first is still queued


def test_build_environment_of_a_superseded_request_does_nothing():
    script = ScriptFactory(env_build_token="newer")
    assert tasks.build_environment.run(script.pk, "older") == "superseded"


def test_reap_and_prune_runs(settings):
    settings.SCRIPTS_HISTORY_MAX_RUNS = 1
    script = ScriptFactory()
    ScriptRunFactory(script=script, state=RunState.SUCCEEDED, queued_at=timezone.now() - timedelta(hours=1))
    ScriptRunFactory(script=script, state=RunState.SUCCEEDED)
    lost = ScriptRunFactory(
        state=RunState.RUNNING, lease_token="x", lease_expires_at=timezone.now() - timedelta(seconds=5)
    )
    assert tasks.reap_runs.run() == {"lost": 1, "resent": 0}
    assert tasks.prune_runs.run() == 1
    lost.refresh_from_db()
    assert lost.state == RunState.FAILED


def test_the_periodic_tasks_are_in_beat_s_schedule():
    tasks_by_name = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"scripts.tasks.reap_runs", "scripts.tasks.prune_runs"} <= tasks_by_name
