"""Built-in templates: listed, started from (API, CLI), and each one run in the real sandbox
against the fake OpenAI and Keboola servers."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from fakes.state import fingerprint
from polling.actions.base import TriggerMetadata
from polling.actions.script import ScriptAction
from polling.models import ActionType
from polling.tests.factories import PollingJobFactory
from scripts import services
from scripts.models import RunState, RunTrigger, Script, ScriptRun
from scripts.services.environments import environment_build_now, work_dir
from secrets_vault.services import secret_create
from teckochecker.errors import ValidationFailed

pytestmark = pytest.mark.django_db

OPENAI_KEY = "sk-template-test-0123456789abcdef"
KEBOOLA_TOKEN = "1234-template-test-abcdefghijklmnop"


def _from_template(sent, capture, template, **fields) -> Script:
    with capture(execute=True):
        script = services.script_create_from_template(template=template, name=template, **fields)
    (script_id, token), _ = sent["build"][-1]
    assert environment_build_now(script_id=script_id, token=token) == "ready"
    script.refresh_from_db()
    return script


def _execute(run: ScriptRun) -> ScriptRun:
    services.run_execute(run_id=run.pk, worker="test")
    run.refresh_from_db()
    return run


def _run(script: Script) -> ScriptRun:
    return _execute(services.run_request(script=script, trigger=RunTrigger.MANUAL))


def test_every_template_is_listed_with_code_that_compiles():
    names = [t.name for t in services.template_list()]
    assert names == ["hello-world", "http-health-check", "keboola-storage", "openai-batch-output"]
    for template in services.template_list():
        compile(template.code, template.file, "exec")


def test_hello_world(sent, django_capture_on_commit_callbacks):
    script = _from_template(sent, django_capture_on_commit_callbacks, "hello-world")
    run = _run(script)
    assert run.state == RunState.SUCCEEDED, run.output
    assert "Hello from hello-world!" in run.output and "started by: manual" in run.output


def test_http_health_check_passes_and_fails_the_run_when_the_url_is_down(
    sent, django_capture_on_commit_callbacks, outside_fake_servers
):
    script = _from_template(
        sent,
        django_capture_on_commit_callbacks,
        "http-health-check",
        env=[{"name": "CHECK_URL", "value": f"{outside_fake_servers.url}/_control/health"}],
    )
    assert script.network  # the template's
    assert {v.name: v.value for v in script.env_vars.all()}["EXPECT_STATUS"] == "200"
    up = _run(script)
    assert up.state == RunState.SUCCEEDED and up.output.startswith(
        f"UP {outside_fake_servers.url}/_control/health: HTTP 200"
    )

    services.script_update(
        script=script, env=[{"name": "CHECK_URL", "value": f"{outside_fake_servers.url}/_control/gone"}]
    )
    down = _run(script)
    assert (down.state, down.exit_code) == (RunState.FAILED, 1)
    assert "DOWN" in down.output and "HTTP 404 (expected 200)" in down.output


def test_keboola_storage_call_with_a_vault_secret(
    sent, django_capture_on_commit_callbacks, outside_fake_servers
):
    secret_create(name="kbc", type="keboola", value=KEBOOLA_TOKEN)
    script = _from_template(
        sent,
        django_capture_on_commit_callbacks,
        "keboola-storage",
        env=[
            {"name": "KBC_URL", "value": outside_fake_servers.stack_url},
            {"name": "KBC_TOKEN", "secret": "kbc"},
        ],
    )
    run = _run(script)
    assert run.state == RunState.SUCCEEDED, run.output
    assert "2 bucket(s) in the project:" in run.output and "in.c-main" in run.output
    assert KEBOOLA_TOKEN not in run.output
    calls = outside_fake_servers.requests("keboola.storage_buckets")
    assert calls and calls[-1]["auth_fingerprint"] == fingerprint(KEBOOLA_TOKEN)


def test_openai_batch_output_downloads_when_a_polling_jobs_script_action_runs_it(
    sent, django_capture_on_commit_callbacks, outside_fake_servers
):
    secret_create(name="openai", type="openai", value=OPENAI_KEY)
    outside_fake_servers.set_batch("batch_done", status="completed", completed=4, failed=1, total=5)
    outside_fake_servers.set_batch("batch_bad", status="failed")
    script = _from_template(
        sent,
        django_capture_on_commit_callbacks,
        "openai-batch-output",
        env=[
            {"name": "OPENAI_API_KEY", "secret": "openai"},
            {"name": "OPENAI_BASE_URL", "value": outside_fake_servers.openai_base_url},
        ],
    )
    job = PollingJobFactory(action_type=ActionType.SCRIPT, action_script=script)
    # What the job's script action does when its batches are done.
    ScriptAction().send(job, TriggerMetadata(completed=["batch_done"], failed=["batch_bad"]), secret=None)
    run = _execute(ScriptRun.objects.get(polling_job=job))
    assert run.state == RunState.SUCCEEDED, run.output
    assert "batch_done: 4 result line(s) saved to output/batch_done.jsonl" in run.output
    assert "Batches that did not complete: batch_bad" in run.output
    saved = (work_dir(script) / "output" / "batch_done.jsonl").read_text().splitlines()
    assert [json.loads(line)["custom_id"] for line in saved] == [f"request-{i}" for i in range(1, 5)]

    by_hand = _run(script)  # not from a job: says how it is meant to run
    assert (
        by_hand.state == RunState.FAILED and "make this script the action of a polling job" in by_hand.output
    )


def test_api_lists_templates_and_creates_from_one(api, sent):
    listed = api.get("/api/script-templates").json()["templates"]
    keboola = next(t for t in listed if t["name"] == "keboola-storage")
    assert keboola["network"] and "X-StorageApi-Token" in keboola["code"]
    assert {
        "name": "KBC_TOKEN",
        "value": "",
        "secret_type": "keboola",
        "help": keboola["variables"][1]["help"],
    } in (keboola["variables"])

    created = api.post(
        "/api/scripts",
        {
            "name": "Uptime",
            "template": "http-health-check",
            "env": [{"name": "CHECK_URL", "value": "https://x.test"}],
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["network"] and "urllib.request" in body["code"] and body["version"] == 1
    assert {"name": "CHECK_URL", "value": "https://x.test"} in body["env"]
    assert {"name": "TIMEOUT_SECONDS", "value": "10"} in body["env"]

    unknown = api.post("/api/scripts", {"name": "X", "template": "nope"}, format="json")
    assert unknown.status_code == 400 and "the templates are: hello-world" in unknown.json()["detail"]


def test_cli_lists_templates_and_adds_from_one(sent):
    out = StringIO()
    call_command("script", "templates", stdout=out, no_color=True)
    assert "openai-batch-output" in out.getvalue() and "OPENAI_API_KEY=<openai secret>" in out.getvalue()
    call_command(
        "script", "add", "--template", "hello-world", "--name", "Hi", "--folder", "demo", stdout=StringIO()
    )
    script = Script.objects.get(slug="hi")
    assert script.folder == "demo" and "Hello from" in script.code
    with pytest.raises(CommandError, match="No template 'nope'"):
        call_command("script", "add", "--template", "nope", "--name", "X", stdout=StringIO())


def test_an_unknown_template_is_a_validation_error():
    with pytest.raises(ValidationFailed, match="No template 'nope'"):
        services.template_get(name="nope")
