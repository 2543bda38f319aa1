"""Runs through the real sandbox and a real uv environment, in this process (no Celery)."""

import threading
import time

import pytest
from django.db import connection

from scripts import services
from scripts.models import EnvState, RunState, RunTrigger, Script, ScriptRun
from scripts.services.environments import environment_build_now
from secrets_vault.services import secret_create

CANARY = "canary-SCRIPT-SECRET-7f3e9a1b2c4d5e6f"


def _script(sent, capture, **fields) -> Script:
    with capture(execute=True):
        script = services.script_create(**{"name": "run me", **fields})
    (script_id, token), _ = sent["build"][-1]
    assert environment_build_now(script_id=script_id, token=token) == "ready"
    script.refresh_from_db()
    return script


def _run(script: Script, **kwargs) -> ScriptRun:
    run = services.run_request(script=script, trigger=kwargs.pop("trigger", RunTrigger.MANUAL), **kwargs)
    services.run_execute(run_id=run.pk, worker="test")
    run.refresh_from_db()
    return run


@pytest.mark.django_db
def test_a_run_records_its_output_exit_code_and_usage(sent, django_capture_on_commit_callbacks):
    script = _script(
        sent,
        django_capture_on_commit_callbacks,
        code="import os, sys\nprint('out', os.environ['TECKOCHECKER_TRIGGER'])\nprint('err', file=sys.stderr)\n",
    )
    run = _run(script)
    assert run.state == RunState.SUCCEEDED and run.exit_code == 0
    assert run.output == "out manual\nerr\n"
    assert run.started_at <= run.finished_at and run.duration_seconds >= 0
    assert run.peak_memory_kb and run.cpu_seconds is not None
    assert run.lease_token == "" and run.pid


@pytest.mark.django_db
def test_a_failing_script_is_failed_with_its_traceback(sent, django_capture_on_commit_callbacks):
    script = _script(sent, django_capture_on_commit_callbacks, code="raise SystemExit(3)\n")
    run = _run(script)
    assert (run.state, run.exit_code) == (RunState.FAILED, 3)
    script = _script(sent, django_capture_on_commit_callbacks, name="boom", code="{}['missing']\n")
    run = _run(script)
    assert run.state == RunState.FAILED and "KeyError: 'missing'" in run.output


@pytest.mark.django_db
def test_a_script_that_sleeps_past_its_timeout_is_timed_out(sent, django_capture_on_commit_callbacks):
    script = _script(
        sent, django_capture_on_commit_callbacks, code="import time\ntime.sleep(30)\n", timeout_seconds=1
    )
    run = _run(script)
    assert run.state == RunState.TIMED_OUT and run.message


@pytest.mark.django_db
def test_a_secret_reaches_the_script_and_none_of_our_outputs(
    sent, django_capture_on_commit_callbacks, caplog
):
    secret_create(name="api-token", type="http_header", value=CANARY)
    script = _script(
        sent,
        django_capture_on_commit_callbacks,
        code=(
            "import os\n"
            f"print('same' if os.environ['TOKEN'] == {CANARY!r} else 'different')\n"
            "print(os.environ['TOKEN'])\n"
            "raise RuntimeError('leaking ' + os.environ['TOKEN'])\n"
        ),
        env=[{"name": "TOKEN", "secret": "api-token"}, {"name": "MODE", "value": "prod"}],
        notify={"on_failure": True, "emails": ["ops@example.com"]},
    )
    run = _run(script)
    assert run.state == RunState.FAILED
    assert run.output.startswith("same\n[secret TOKEN]\n")
    stored = list(ScriptRun.objects.values_list("output", "message"))
    assert CANARY not in repr(stored) and CANARY not in caplog.text


@pytest.mark.django_db
def test_a_polling_job_run_gets_the_five_keboola_variables(sent, django_capture_on_commit_callbacks):
    script = _script(
        sent,
        django_capture_on_commit_callbacks,
        code="import os\nfor k in sorted(os.environ):\n    k.startswith('batch_') and print(k, os.environ[k])\n",
    )
    env = {
        "batch_ids_completed": '["batch_a"]',
        "batch_ids_failed": "[]",
        "batch_count_total": "1",
        "batch_count_completed": "1",
        "batch_count_failed": "0",
    }
    run = _run(script, trigger=RunTrigger.JOB, extra_env=env)
    assert run.output.splitlines() == [f"{k} {v}" for k, v in sorted(env.items())]


@pytest.mark.django_db
def test_a_run_never_starts_in_an_environment_being_rebuilt(sent, django_capture_on_commit_callbacks):
    script = _script(sent, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        services.script_update(script=script, requirements="six\n")
    run = services.script_run_now(script=script)
    assert services.run_execute(run_id=run.pk) == "waiting"
    run.refresh_from_db()
    assert run.state == RunState.QUEUED and run.started_at is None


def _in_thread(target):
    def wrapped():
        try:
            target()
        finally:
            connection.close()

    thread = threading.Thread(target=wrapped)
    thread.start()
    return thread


def _wait(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.django_db(transaction=True)
def test_cancel_from_another_process_ends_the_running_script_and_output_is_live(
    sent, django_capture_on_commit_callbacks
):
    script = _script(
        sent,
        django_capture_on_commit_callbacks,
        code="import time\nprint('started', flush=True)\ntime.sleep(60)\nprint('never')\n",
    )
    run = services.script_run_now(script=script)
    worker = _in_thread(lambda: services.run_execute(run_id=run.pk, worker="thread"))
    _wait(lambda: ScriptRun.objects.get(pk=run.pk).output == "started\n")  # seen while it runs
    assert ScriptRun.objects.get(pk=run.pk).state == RunState.RUNNING
    services.run_cancel(run=ScriptRun.objects.get(pk=run.pk))
    worker.join(timeout=10)
    assert not worker.is_alive()
    run.refresh_from_db()
    assert run.state == RunState.CANCELLED and "never" not in run.output


@pytest.mark.django_db(transaction=True)
def test_deleting_a_script_ends_its_running_run(sent, django_capture_on_commit_callbacks):
    script = _script(sent, django_capture_on_commit_callbacks, code="import time\ntime.sleep(60)\n")
    run = services.script_run_now(script=script)
    outcome = {}
    worker = _in_thread(lambda: outcome.setdefault("state", services.run_execute(run_id=run.pk)))
    _wait(lambda: ScriptRun.objects.filter(pk=run.pk, pid__isnull=False).exists())
    started = time.monotonic()
    services.script_delete(script=script)
    worker.join(timeout=10)
    assert not worker.is_alive() and time.monotonic() - started < 5
    assert outcome["state"] == "gone"
    assert not Script.objects.exists() and not ScriptRun.objects.exists()


@pytest.mark.django_db
def test_a_waiting_run_starts_when_the_running_one_ends(sent, django_capture_on_commit_callbacks):
    script = _script(sent, django_capture_on_commit_callbacks)
    first = services.script_run_now(script=script)
    second = services.script_run_now(script=script)
    sent["run"].clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.run_execute(run_id=first.pk)
    assert [run_id for run_id, _ in sent["run"]] == [second.pk]
    assert Script.objects.get(pk=script.pk).env_state == EnvState.READY
