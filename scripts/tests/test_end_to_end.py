"""The real thing: a scripts worker on SCRIPTS_QUEUE, a polling worker and beat as processes, the
real broker and the real sandbox; scripts made and run through the API."""

from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from polling.tests.stack import running_stack, wait_for
from scripts.models import RunState, RunTrigger, ScriptRun

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SECRET = "e2e-canary-secret-value-1234567890"


def _fresh(**filters):
    connection.close()  # see the workers' commits, not a stale snapshot
    return list(ScriptRun.objects.filter(**filters).order_by("id"))


def _ready(api, script_id):
    return api.get(f"/api/scripts/{script_id}/environment").json()["state"] == "ready"


def test_scripts_build_run_on_a_schedule_at_startup_and_cancel(api, request, scripts_dir):
    api.post(
        "/api/admin/secrets", {"name": "e2e-token", "type": "http_header", "value": SECRET}, format="json"
    )
    hello = api.post(
        "/api/scripts",
        {
            "name": "Hello E2E",
            "code": "import os\nprint('hello', os.environ['WHO'])\nprint(os.environ['TOKEN'])\n",
            "env": [{"name": "WHO", "value": "world"}, {"name": "TOKEN", "secret": "e2e-token"}],
            "schedule": {"type": "interval", "every": 2, "unit": "seconds"},
        },
        format="json",
    ).json()
    startup = api.post(
        "/api/scripts",
        {"name": "At Startup", "code": "print('started up')\n", "schedule": {"type": "startup"}},
        format="json",
    ).json()
    sleeper = api.post(
        "/api/scripts", {"name": "Sleeper", "code": "import time\ntime.sleep(120)\n"}, format="json"
    ).json()

    with running_stack(request.node.name, scripts_worker=True, SCRIPTS_DIR=str(scripts_dir)) as stack:
        try:
            for script in (hello, startup, sleeper):
                wait_for(
                    lambda s=script: _ready(api, s["id"]),
                    timeout=60,
                    message=f"environment of {script['slug']}",
                )
            # Built by the scripts worker, with its disk use measured.
            assert api.get(f"/api/scripts/{hello['id']}/environment").json()["disk_bytes"] > 0

            # At startup: beat queued it once when it started.
            wait_for(
                lambda: _fresh(script_id=startup["id"], state=RunState.SUCCEEDED),
                timeout=30,
                message="startup run",
            )

            # Manual: 202, then the worker runs it.
            run = api.post(f"/api/scripts/{hello['id']}/run").json()
            wait_for(lambda: _fresh(pk=run["id"], state=RunState.SUCCEEDED), timeout=30, message="manual run")
            detail = api.get(f"/api/runs/{run['id']}").json()
            assert detail["output"] == "hello world\n[secret TOKEN]\n" and detail["exit_code"] == 0

            # Interval: every 2 s through beat's periodic task.
            wait_for(
                lambda: (
                    len(_fresh(script_id=hello["id"], trigger=RunTrigger.SCHEDULE, state=RunState.SUCCEEDED))
                    >= 2
                ),
                timeout=40,
                message="two scheduled runs",
            )

            # Cancel from this process reaches the worker's sandboxed child.
            long = api.post(f"/api/scripts/{sleeper['id']}/run").json()
            wait_for(
                lambda: _fresh(pk=long["id"], state=RunState.RUNNING), timeout=30, message="sleeper running"
            )
            assert api.post(f"/api/runs/{long['id']}/cancel").status_code == 200
            wait_for(lambda: _fresh(pk=long["id"], state=RunState.CANCELLED), timeout=15, message="cancelled")
        except AssertionError:
            print(stack.log("scripts")[-6000:], stack.log("beat")[-3000:])
            raise

    startup_runs = _fresh(script_id=startup["id"])
    assert [r.trigger for r in startup_runs] == [RunTrigger.STARTUP]
    everything = "".join(r.output + r.message for r in _fresh())
    logs = stack.log("scripts") + stack.log("worker1") + stack.log("beat")
    assert SECRET not in everything and SECRET not in logs
    assert "hello world" not in logs  # a script's output is the user's, not our log's
    assert settings.SCRIPTS_QUEUE.endswith("-scripts")


def test_a_killed_scripts_worker_leaves_no_run_running(api, request, scripts_dir):
    """SIGKILL of the scripts worker mid-run: its sandboxed child dies with it, the run's lease
    lapses and the reaper (in beat's schedule) ends the run as failed, saying why."""
    import signal

    from scripts.services.runs import LOST_MESSAGE

    sleeper = api.post(
        "/api/scripts", {"name": "Long", "code": "import time\ntime.sleep(300)\n"}, format="json"
    ).json()
    with running_stack(
        request.node.name, scripts_worker=True, SCRIPTS_DIR=str(scripts_dir), SCRIPTS_RUN_LEASE_SECONDS="4"
    ) as stack:
        try:
            wait_for(lambda: _ready(api, sleeper["id"]), timeout=60, message="environment")
            run = api.post(f"/api/scripts/{sleeper['id']}/run").json()
            wait_for(
                lambda: _fresh(pk=run["id"], state=RunState.RUNNING, pid__isnull=False),
                timeout=30,
                message="running",
            )
            stack.stop("scripts", sig=signal.SIGKILL)
            wait_for(
                lambda: _fresh(pk=run["id"], state=RunState.FAILED),
                timeout=30,
                message="the run to be reaped",
            )
        except AssertionError:
            print(stack.log("worker1")[-4000:], stack.log("beat")[-3000:])
            raise
    (ended,) = _fresh(pk=run["id"])
    assert ended.message == LOST_MESSAGE and ended.finished_at and ended.lease_token == ""
    # The sandbox died with its worker: nothing of the script is left running.
    wait_for(lambda: not Path(f"/proc/{ended.pid}").exists(), timeout=10, message="the sandbox gone")
