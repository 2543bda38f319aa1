"""The scripts services: create/update/delete, environments requested, schedules, runs."""

from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from scripts import services
from scripts.models import EnvState, RunState, RunTrigger, Script, ScriptRun
from scripts.services.environments import script_dir
from scripts.services.runs import LOST_MESSAGE, runs_prune, runs_reap
from scripts.services.schedules import next_runs
from scripts.tests.factories import ScriptFactory, ScriptRunFactory
from scripts.validation import CodeSyntaxError
from secrets_vault.exceptions import SecretInUse
from secrets_vault.services import secret_create, secret_delete
from teckochecker.errors import ValidationFailed

pytestmark = pytest.mark.django_db


def test_create_makes_a_safe_unique_name_and_asks_for_an_environment(
    sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        first = services.script_create(name="Hello World")
        second = services.script_create(name="Hello  World!")
        third = services.script_create(name="API Call #1")
    assert (first.slug, second.slug, third.slug) == ("hello-world", "hello-world-2", "api-call-1")
    assert first.env_state == EnvState.CREATING
    assert [args[0] for args, _ in sent["build"]] == [first.pk, second.pk, third.pk]
    assert all(kw["queue"].endswith("-scripts") for _, kw in sent["build"])


def test_create_takes_limits_from_settings(settings, sent):
    settings.SCRIPTS_DEFAULT_TIMEOUT_SECONDS = 42
    settings.SCRIPTS_DEFAULT_MEMORY_MB = 64
    settings.SCRIPTS_DEFAULT_CPU_SECONDS = 7
    script = services.script_create(name="limits")
    assert (script.timeout_seconds, script.memory_mb, script.cpu_seconds) == (42, 64, 7)
    assert script.python_version  # the machine's default interpreter


def test_a_syntax_error_stores_nothing_and_names_the_line(sent):
    with pytest.raises(CodeSyntaxError) as caught:
        services.script_create(name="broken", code="print('a')\nprint('b'\n")
    assert caught.value.line == 2
    assert not Script.objects.exists()


def test_every_bad_field_is_reported_at_once(sent):
    with pytest.raises(ValidationFailed) as caught:
        services.script_create(name="", memory_mb=1, schedule={"type": "cron", "cron": "bad"})
    assert {"name", "memory_mb", "schedule.cron"} <= set(caught.value.errors)


def test_a_secret_variable_names_an_existing_secret(sent):
    with pytest.raises(ValidationFailed, match="secret 'nope' not found"):
        services.script_create(name="s", env=[{"name": "TOKEN", "secret": "nope"}])
    secret = secret_create(name="api-token", type="http_header", value="tok-123456")
    script = services.script_create(name="s", env=[{"name": "TOKEN", "secret": "api-token"}])
    var = script.env_vars.get()
    assert var.secret_id == secret.pk and var.value == ""


def test_a_secret_a_script_uses_cannot_be_deleted(sent):
    secret = secret_create(name="api-token", type="http_header", value="tok-123456")
    services.script_create(name="User Of It", env=[{"name": "TOKEN", "secret": "api-token"}])
    with pytest.raises(SecretInUse, match="script user-of-it"):
        secret_delete(secret=secret)


def test_update_rebuilds_only_when_python_or_requirements_change(sent, django_capture_on_commit_callbacks):
    script = services.script_create(name="s")
    Script.objects.filter(pk=script.pk).update(env_state=EnvState.READY)
    script.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        services.script_update(script=script, code="print(1)\n", name="renamed", memory_mb=128)
    assert sent["build"] == []
    script.refresh_from_db()
    assert (script.name, script.slug, script.env_state) == ("renamed", "s", EnvState.READY)
    with django_capture_on_commit_callbacks(execute=True):
        services.script_update(script=script, requirements="six==1.16.0\n")
    script.refresh_from_db()
    assert script.env_state == EnvState.CREATING and len(sent["build"]) == 1


def test_update_refuses_unknown_fields_and_nulls(sent):
    script = ScriptFactory()
    with pytest.raises(ValidationFailed, match="cannot be changed"):
        services.script_update(script=script, slug="other")
    with pytest.raises(ValidationFailed, match="may not be null"):
        services.script_update(script=script, code=None)


def test_interval_and_cron_schedules_are_one_periodic_task_each(sent):
    script = services.script_create(
        name="every", schedule={"type": "interval", "every": 5, "unit": "minutes"}
    )
    task = PeriodicTask.objects.get(pk=script.periodic_task_id)
    assert (task.interval.every, task.interval.period, task.crontab) == (5, "minutes", None)
    assert task.task == "scripts.tasks.scheduled_run" and task.args == f"[{script.pk}]"

    services.script_update(
        script=script, schedule={"type": "cron", "cron": "30 3 * * 1-5", "timezone": "Europe/Prague"}
    )
    task.refresh_from_db()
    assert task.interval is None
    assert (task.crontab.minute, task.crontab.hour, task.crontab.day_of_week) == ("30", "3", "1-5")
    assert str(task.crontab.timezone) == "Europe/Prague"
    assert PeriodicTask.objects.filter(name__startswith="teckochecker.script.").count() == 1

    services.script_update(script=script, enabled=False)
    assert not PeriodicTask.objects.filter(name__startswith="teckochecker.script.").exists()
    services.script_update(script=script, enabled=True, schedule={"type": "manual"})
    assert not PeriodicTask.objects.filter(name__startswith="teckochecker.script.").exists()


def test_delete_removes_runs_schedule_and_folder(sent, django_capture_on_commit_callbacks):
    script = services.script_create(name="gone", schedule={"type": "interval", "every": 1, "unit": "hours"})
    folder = script_dir(script)
    (folder / "env").mkdir(parents=True)
    (folder / "work" / "data.txt").parent.mkdir(parents=True)
    (folder / "work" / "data.txt").write_text("x")
    ScriptRunFactory(script=script, state=RunState.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        services.script_delete(script=script)
    assert not Script.objects.exists() and not ScriptRun.objects.exists()
    assert not PeriodicTask.objects.filter(name__startswith="teckochecker.script.").exists()
    assert not folder.exists()


def test_next_runs_of_a_cron_schedule_in_its_time_zone():
    now = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)  # Prague changes to summer time on the 29th
    times = next_runs(schedule={"type": "cron", "cron": "0 3 * * *", "timezone": "Europe/Prague"}, now=now)
    assert [t.isoformat() for t in times] == [
        "2026-03-28T02:00:00+00:00",
        "2026-03-29T01:00:00+00:00",
        "2026-03-30T01:00:00+00:00",
        "2026-03-31T01:00:00+00:00",
        "2026-04-01T01:00:00+00:00",
    ]


def test_next_runs_of_an_interval_and_of_manual():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    times = next_runs(schedule={"type": "interval", "every": 90, "unit": "seconds"}, now=now, count=3)
    assert times == [now + timedelta(seconds=90 * i) for i in (1, 2, 3)]
    assert next_runs(schedule={"type": "manual"}) == []
    assert next_runs(schedule={"type": "startup"}) == []


def test_next_runs_on_a_firing_minute_moves_on():
    now = datetime(2026, 1, 1, 12, 15, tzinfo=UTC)
    times = next_runs(schedule={"type": "cron", "cron": "*/15 * * * *"}, now=now, count=2)
    assert times == [datetime(2026, 1, 1, 12, 30, tzinfo=UTC), datetime(2026, 1, 1, 12, 45, tzinfo=UTC)]


# --- runs ------------------------------------------------------------------------------------


def test_a_scheduled_run_is_skipped_while_one_is_running(sent, caplog):
    script = ScriptFactory()
    ScriptRunFactory(script=script, state=RunState.RUNNING)
    assert services.run_scheduled(script_id=script.pk) is None
    assert "overlap policy: skip" in caplog.text
    assert ScriptRun.objects.count() == 1


def test_with_the_queue_policy_a_scheduled_run_waits(sent):
    script = ScriptFactory(overlap="queue")
    ScriptRunFactory(script=script, state=RunState.RUNNING)
    run = services.run_scheduled(script_id=script.pk)
    assert run.state == RunState.QUEUED and run.trigger == RunTrigger.SCHEDULE


def test_a_manual_run_always_queues(sent, django_capture_on_commit_callbacks):
    script = ScriptFactory()
    ScriptRunFactory(script=script, state=RunState.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        run = services.script_run_now(script=script)
    assert run.trigger == RunTrigger.MANUAL
    assert [(run_id, kw["queue"]) for run_id, kw in sent["run"]] == [(run.pk, settings.SCRIPTS_QUEUE)]


def test_a_disabled_script_has_no_scheduled_runs(sent):
    script = ScriptFactory(enabled=False)
    assert services.run_scheduled(script_id=script.pk) is None
    assert services.run_scheduled(script_id=10**9) is None


def test_a_run_waits_while_another_run_of_the_script_is_running(sent):
    script = ScriptFactory()
    ScriptRunFactory(
        script=script, state=RunState.RUNNING, lease_expires_at=timezone.now() + timedelta(minutes=1)
    )
    waiting = ScriptRunFactory(script=script)
    assert services.run_execute(run_id=waiting.pk) == "busy"
    waiting.refresh_from_db()
    assert waiting.state == RunState.QUEUED


def test_a_run_waits_for_its_environment_and_fails_with_a_failed_one(sent):
    building = ScriptRunFactory(script=ScriptFactory(env_state=EnvState.INSTALLING))
    assert services.run_execute(run_id=building.pk) == "waiting"
    broken = ScriptRunFactory(
        script=ScriptFactory(env_state=EnvState.FAILED, env_error="No matching distribution")
    )
    assert services.run_execute(run_id=broken.pk) == "failed"
    broken.refresh_from_db()
    assert broken.state == RunState.FAILED and "No matching distribution" in broken.message


def test_cancel_a_queued_run_at_once_and_a_running_one_through_its_worker(sent):
    queued = ScriptRunFactory()
    assert services.run_cancel(run=queued).state == RunState.CANCELLED
    running = ScriptRunFactory(state=RunState.RUNNING, lease_token="t")
    after = services.run_cancel(run=running)
    assert after.state == RunState.RUNNING and after.cancel_requested
    finished = ScriptRunFactory(state=RunState.SUCCEEDED)
    with pytest.raises(services.RunNotActive, match="succeeded"):
        services.run_cancel(run=finished)


def test_a_run_whose_worker_died_is_marked_failed(sent):
    lost = ScriptRunFactory(
        state=RunState.RUNNING, lease_token="t", lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    alive = ScriptRunFactory(
        state=RunState.RUNNING, lease_token="u", lease_expires_at=timezone.now() + timedelta(seconds=30)
    )
    assert runs_reap()["lost"] == 1
    lost.refresh_from_db()
    alive.refresh_from_db()
    assert lost.state == RunState.FAILED and lost.message == LOST_MESSAGE and lost.finished_at
    assert alive.state == RunState.RUNNING


def test_a_redelivered_message_of_a_dead_run_ends_it_instead_of_running_it_again(sent):
    lost = ScriptRunFactory(
        state=RunState.RUNNING, lease_token="t", lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert services.run_execute(run_id=lost.pk) == "lost"
    lost.refresh_from_db()
    assert lost.state == RunState.FAILED


def test_a_queued_run_whose_message_was_lost_is_sent_again(sent):
    old = ScriptRunFactory(queued_at=timezone.now() - timedelta(minutes=5))
    ScriptRunFactory(script=old.script, queued_at=timezone.now() - timedelta(minutes=4))  # after it
    ScriptRunFactory()  # fresh
    assert runs_reap()["resent"] == 1
    assert [run_id for run_id, _ in sent["run"]] == [old.pk]


def test_history_is_pruned_by_age_and_by_count(settings):
    settings.SCRIPTS_HISTORY_DAYS = 7
    settings.SCRIPTS_HISTORY_MAX_RUNS = 3
    script = ScriptFactory()
    now = timezone.now()
    old = ScriptRunFactory(script=script, state=RunState.SUCCEEDED, queued_at=now - timedelta(days=8))
    runs = [
        ScriptRunFactory(script=script, state=RunState.FAILED, queued_at=now - timedelta(hours=10 - i))
        for i in range(5)
    ]
    active = ScriptRunFactory(script=script, state=RunState.QUEUED, queued_at=now - timedelta(days=9))
    other = ScriptRunFactory(state=RunState.SUCCEEDED)
    assert runs_prune() == 3
    left = set(ScriptRun.objects.values_list("pk", flat=True))
    assert left == {runs[2].pk, runs[3].pk, runs[4].pk, active.pk, other.pk}
    assert old.pk not in left


def test_startup_scripts_run_once_when_beat_starts(sent):
    startup = ScriptFactory(schedule_type="startup")
    ScriptFactory(schedule_type="startup", enabled=False)
    ScriptFactory(schedule_type="manual")
    assert services.scripts_run_at_startup() == 1
    assert ScriptRun.objects.get().script == startup
    assert ScriptRun.objects.get().trigger == RunTrigger.STARTUP


def test_a_polling_job_gets_one_run_however_often_it_asks(sent):
    from polling.tests.factories import PollingJobFactory

    job = PollingJobFactory()
    script = ScriptFactory()
    first = services.run_request(script=script, trigger=RunTrigger.JOB, polling_job=job, extra_env={"A": "1"})
    again = services.run_request(script=script, trigger=RunTrigger.JOB, polling_job=job, extra_env={"A": "1"})
    assert first.pk == again.pk and ScriptRun.objects.count() == 1


def test_a_failed_run_notifies_the_script_s_recipients(settings, monkeypatch, mailoutbox):
    from polling.tasks import deliver_notification
    from scripts.services.runs import _finish

    queued = []
    monkeypatch.setattr(
        "polling.services.notifications.task_send_on_commit",
        lambda name, args, kwargs=None: queued.append((name, args, kwargs)),
    )
    script = ScriptFactory(name="Nightly", notify_on_failure=True, notify_emails="ops@example.com")
    quiet = ScriptFactory(notify_on_failure=False)
    run = ScriptRunFactory(script=script, state=RunState.RUNNING)
    _finish(run.pk, state=RunState.FAILED, message="Exited with code 2.", exit_code=2)
    _finish(ScriptRunFactory(script=quiet, state=RunState.RUNNING).pk, state=RunState.FAILED, message="x")
    assert queued == [
        ("polling.tasks.deliver_notification", [None, "script_failed", "email"], {"run_id": run.pk})
    ]
    name, args, kwargs = queued[0]
    deliver_notification.apply(args=args, kwargs=kwargs)
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["ops@example.com"]
    assert "Nightly" in mailoutbox[0].subject
    assert f"run #{run.pk} failed: failed, exit code 2. Exited with code 2." in mailoutbox[0].body


def test_sync_schedules_repairs_script_periodic_tasks(sent):
    import io

    from django.core.management import call_command

    script = services.script_create(name="every", schedule={"type": "interval", "every": 1, "unit": "hours"})
    every_hour = PeriodicTask.objects.get(pk=script.periodic_task_id).interval
    PeriodicTask.objects.filter(pk=script.periodic_task_id).delete()  # lost (a restored backup)
    PeriodicTask.objects.create(
        name="teckochecker.script.999", task="scripts.tasks.scheduled_run", interval=every_hour
    )
    out = io.StringIO()
    call_command("sync_schedules", stdout=out)
    assert (
        "✓ Script schedules in step with 1 script(s): 1 left-over periodic task(s) removed" in out.getvalue()
    )
    script.refresh_from_db()
    assert PeriodicTask.objects.get(name=f"teckochecker.script.{script.pk}").interval.every == 1


def test_create_keeps_a_given_safe_name_and_refuses_a_bad_or_taken_one(sent):
    script = services.script_create(name="Hello", slug="kept-from-elsewhere")
    assert script.slug == "kept-from-elsewhere"
    with pytest.raises(ValidationFailed, match="'kept-from-elsewhere' is taken"):
        services.script_create(name="Other", slug="kept-from-elsewhere")
    with pytest.raises(ValidationFailed, match="is not a safe name"):
        services.script_create(name="Other", slug="Not Safe")
    assert Script.objects.count() == 1
