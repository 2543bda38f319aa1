"""`manage.py script ...` through call_command: the services behind it are tested on their own."""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from polling.tests.stack import process_env
from scripts import environments
from scripts.management.commands import script as script_command
from scripts.models import RunState, Script, ScriptRun
from scripts.tests.factories import ScriptEnvVarFactory, ScriptFactory, ScriptRunFactory
from scripts.tests.worker import scripts_worker  # noqa: F401 (fixture)
from secrets_vault.tests.factories import OpenAISecretFactory

pytestmark = pytest.mark.django_db


def run(*args: str, stdin: str = "") -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("script", *args, stdout=out, stderr=err, stdin=StringIO(stdin), no_color=True)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def code_file(tmp_path):
    path = tmp_path / "hello.py"
    path.write_text("import os\nprint('hello', os.environ.get('GREETING'))\n")
    return path


@pytest.fixture
def python_version():
    return environments.pythons_available()[0].version


def test_add_stores_code_requirements_schedule_and_folder(sent, tmp_path, code_file, python_version):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("requests==2.32.3\n")
    out, _ = run(
        "add", "--name", "Hello World", "--file", str(code_file), "--requirements", str(requirements),
        "--every", "5m", "--folder", "demo", "--python", python_version, "--env", "GREETING=hi",
    )  # fmt: skip
    script = Script.objects.get()
    assert "✓ Script 'Hello World' added" in out and "hello-world" in out
    assert (script.slug, script.folder, script.python_version) == ("hello-world", "demo", python_version)
    assert script.code == code_file.read_text()
    assert script.requirements == "requests==2.32.3\n"
    assert (script.schedule_type, script.schedule_every, script.schedule_unit) == ("interval", 5, "minutes")
    assert [(v.name, v.value) for v in script.env_vars.all()] == [("GREETING", "hi")]


def test_add_with_cron_in_a_time_zone(sent, code_file):
    run(
        "add",
        "--name",
        "Nightly",
        "--file",
        str(code_file),
        "--cron",
        "0 3 * * *",
        "--timezone",
        "Europe/Prague",
    )
    script = Script.objects.get()
    assert (script.schedule_type, script.schedule_cron, script.schedule_timezone) == (
        "cron",
        "0 3 * * *",
        "Europe/Prague",
    )
    assert script.periodic_task is not None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--every", "5x"], "takes a number and a unit: 30s, 5m or 2h (got '5x')"),
        (["--every", "5m", "--cron", "0 3 * * *"], "not allowed with argument"),
        (["--timezone", "Europe/Prague"], "--timezone goes with --cron."),
        (["--cron", "61 * * * *"], "minute"),
        (["--env", "NOEQUALS"], "takes NAME=VALUE"),
        (["--memory", "1"], "memory"),
        (["--file", "/no/such/file.py"], "--file: cannot read '/no/such/file.py'"),
        (["--env-secret", "KEY=no-such-secret"], "secret 'no-such-secret' not found"),
    ],
)
def test_add_refuses_bad_options_and_stores_nothing(sent, argv, message):
    with pytest.raises(CommandError) as failure:
        run("add", "--name", "Bad", *argv)
    assert message.lower() in str(failure.value).lower()
    assert not Script.objects.exists()


def test_add_reports_the_line_of_a_syntax_error(sent, tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("x = 1\nprint(\n")
    with pytest.raises(CommandError, match=r"[Ll]ine \d"):
        run("add", "--name", "Broken", "--file", str(path))
    assert not Script.objects.exists()


def test_add_reads_the_code_from_stdin(sent):
    run("add", "--name", "Piped", "--file", "-", stdin="print('from a pipe')\n")
    assert Script.objects.get().code == "print('from a pipe')\n"


def test_a_file_that_is_not_text_is_refused(sent, tmp_path):
    path = tmp_path / "binary.py"
    path.write_bytes(b"\xff\xfe\x00print(1)")
    with pytest.raises(CommandError, match="is not UTF-8 text"):
        run("add", "--name", "Binary", "--file", str(path))


def test_list_shows_a_table_and_the_api_shape_as_json(sent):
    ScriptFactory(name="Alpha", slug="alpha", folder="etl")
    beta = ScriptFactory(name="Beta <b>[red]x[/red]</b>", slug="beta")
    ScriptRunFactory(script=beta, state=RunState.SUCCEEDED, exit_code=0)
    out, _ = run("list")
    assert "Alpha" in out and "etl" in out and "manual" in out
    assert "Beta <b>[red]x[/red]</b>" in out  # user text is never read as markup
    assert "✅ succeeded" in out
    data = json.loads(run("list", "--json")[0])
    assert data["total"] == 2
    assert [s["slug"] for s in data["scripts"]] == ["beta", "alpha"]  # by folder, then name
    assert data["scripts"][0]["last_run"]["state"] == "succeeded"
    assert run("list", "--folder", "nope")[0].strip() == "No scripts in folder 'nope'."


def test_show_by_id_or_safe_name_never_shows_a_secret_value(sent):
    secret = OpenAISecretFactory(name="openai-prod", value="sk-very-secret-value")
    script = ScriptFactory(name="Reporter", slug="reporter", code="print(1)\nprint(2)\n")
    ScriptEnvVarFactory(script=script, name="API_KEY", value="", secret=secret)
    ScriptEnvVarFactory(script=script, name="MODE", value="test")
    by_slug, _ = run("show", "reporter")
    by_id, _ = run("show", str(script.pk))
    assert by_slug == by_id
    assert "API_KEY=<secret openai-prod>" in by_slug and "MODE=test" in by_slug
    assert "2 lines" in by_slug
    shape = json.loads(run("show", "reporter", "--json")[0])
    assert shape["env"] == [{"name": "API_KEY", "secret": "openai-prod"}, {"name": "MODE", "value": "test"}]
    for text in (by_slug, json.dumps(shape)):
        assert "sk-very-secret-value" not in text
    assert run("show", "reporter", "--code")[0] == "print(1)\nprint(2)\n"


def test_show_an_unknown_script_is_one_clear_error(sent):
    with pytest.raises(CommandError, match="Script 'nope' not found"):
        run("show", "nope")


def test_edit_changes_only_what_is_given(sent, tmp_path):
    script = ScriptFactory(name="Old", slug="old", code="print('old')\n", timeout_seconds=60)
    ScriptEnvVarFactory(script=script, name="A", value="1")
    path = tmp_path / "new.py"
    path.write_text("print('new')\n")
    out, _ = run(
        "edit", "old", "--file", str(path), "--name", "New", "--disable", "--env", "B=2", "--network"
    )
    script.refresh_from_db()
    assert "✓ Script 'New' updated: code, enabled, env, name, network" in out
    assert (script.name, script.slug, script.code, script.enabled, script.network) == (
        "New",
        "old",
        "print('new')\n",
        False,
        True,
    )
    assert script.timeout_seconds == 60
    assert [(v.name, v.value) for v in script.env_vars.all()] == [("B", "2")]
    run("edit", "old", "--every", "2h")
    run("edit", "old", "--manual")
    script.refresh_from_db()
    assert script.schedule_type == "manual"


def test_edit_without_options_says_what_to_give(sent):
    ScriptFactory(slug="same")
    with pytest.raises(CommandError, match="Nothing to change"):
        run("edit", "same")


def test_run_queues_a_manual_run_for_the_scripts_worker(sent):
    script = ScriptFactory(slug="now")
    out, _ = run("run", "now")
    queued = ScriptRun.objects.get()
    assert (queued.script, queued.state, queued.trigger) == (script, "queued", "manual")
    assert f"✓ Run {queued.pk} of '{script.name}' queued" in out
    assert json.loads(run("run", "now", "--json")[0])["state"] == "queued"


def _worker_steps(monkeypatch, *updates: dict) -> list[str]:
    """Stand in for the worker: each time `run --wait` waits for news, the run moves one step on.
    Returns what the command had printed at each wait."""
    steps = iter(updates)
    printed: list[str] = []

    def wait_for_news(command, seconds):
        printed.append(command.stdout._out.getvalue())
        ScriptRun.objects.update(**next(steps))

    monkeypatch.setattr(script_command.Command, "wait_for_news", wait_for_news)
    return printed


def test_run_wait_streams_the_output_and_exits_with_the_scripts_exit_code(sent, monkeypatch):
    ScriptFactory(slug="stream")
    printed = _worker_steps(
        monkeypatch,
        {"state": "running", "output": "one\n"},
        {"output": "one\ntwo\n"},
        {"state": "failed", "output": "one\ntwo\nthree\n", "exit_code": 3, "message": "Exited with code 3."},
    )
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("script", "run", "stream", "--wait", stdout=out, stderr=err)
    assert exited.value.code == 3
    assert printed == ["", "one\n", "one\ntwo\n"]  # each line as it came, not all at the end
    assert out.getvalue() == "one\ntwo\nthree\n"
    run_id = ScriptRun.objects.get().pk
    assert err.getvalue().strip() == f"Run {run_id} failed (exit code 3): Exited with code 3."


def test_run_wait_ends_quietly_when_the_script_succeeds(sent, monkeypatch):
    ScriptFactory(slug="fine")
    _worker_steps(monkeypatch, {"state": "succeeded", "output": "done\n", "exit_code": 0})
    out, err = run("run", "fine", "--wait")
    assert (out, err) == ("done\n", "")


def test_run_wait_of_a_timed_out_run_exits_1_with_the_reason(sent, monkeypatch):
    ScriptFactory(slug="slow")
    _worker_steps(monkeypatch, {"state": "timed_out", "message": "Timed out after 1 s."})
    err = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("script", "run", "slow", "--wait", stdout=StringIO(), stderr=err)
    assert exited.value.code == 1
    assert "timed_out: Timed out after 1 s." in err.getvalue()


def test_runs_output_and_cancel(sent):
    script = ScriptFactory(name="Worker", slug="worker")
    done = ScriptRunFactory(script=script, state=RunState.SUCCEEDED, exit_code=0, output="line 1\nline 2\n")
    truncated = ScriptRunFactory(script=script, state=RunState.FAILED, output="x" * 10, output_truncated=True)
    waiting = ScriptRunFactory(script=script)
    out, _ = run("runs", "worker")
    assert "Runs of Worker (3 of 3)" in out and "✅ succeeded" in out and "⏳ queued" in out
    data = json.loads(run("runs", "worker", "--state", "succeeded", "--json")[0])
    assert [r["id"] for r in data["runs"]] == [done.pk] and "output" not in data["runs"][0]
    found = json.loads(run("runs", "worker", "--search", "line 2", "--json")[0])
    assert [r["id"] for r in found["runs"]] == [done.pk]
    assert run("runs", "worker", "--search", "nothing like it")[0].strip() == "No matching runs of 'Worker'."
    assert run("output", str(done.pk)) == ("line 1\nline 2\n", "")
    assert (
        run("output", str(truncated.pk))[1].strip()
        == f"(run {truncated.pk}: output truncated at the size cap)"
    )
    out, _ = run("cancel", str(waiting.pk))
    assert f"✓ Run {waiting.pk} of 'Worker': cancelled" in out
    assert ScriptRun.objects.get(pk=waiting.pk).state == RunState.CANCELLED
    with pytest.raises(CommandError, match="only a queued or running run can be cancelled"):
        run("cancel", str(done.pk))
    with pytest.raises(CommandError, match="Run 999999 not found"):
        run("output", "999999")


def test_env_check_reports_problems_and_rebuild_starts_a_build(sent):
    script = ScriptFactory(name="Fresh", slug="fresh")
    with pytest.raises(CommandError, match="found 1 problem"):
        run("env", "check", "fresh")
    out, _ = run("env", "rebuild", "fresh")
    assert "is being rebuilt" in out
    script.refresh_from_db()
    assert script.env_state == "creating"


def test_pythons_lists_the_interpreters_found(sent):
    found = environments.pythons_available()
    data = json.loads(run("pythons", "--json")[0])
    assert [p["version"] for p in data["pythons"]] == [p.version for p in found]
    assert sum(p["default"] for p in data["pythons"]) == 1
    assert found[0].version in run("pythons")[0]


def test_delete_asks_first(sent):
    ScriptFactory(name="Doomed", slug="doomed")
    with pytest.raises(CommandError, match="Not confirmed"):
        run("delete", "doomed", stdin="n\n")
    assert Script.objects.exists()
    out, _ = run("delete", "doomed", stdin="y\n")
    assert "✓ Script 'Doomed' deleted" in out
    assert not Script.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("scripts_worker")
def test_run_wait_in_a_real_process_streams_from_a_real_worker(tmp_path):
    """manage.py in its own process, the run on a scripts worker in the sandbox: the first line
    arrives while the script still sleeps, and the exit code is the script's."""
    code = tmp_path / "ticks.py"
    code.write_text(
        "import time\nprint('tick 0', flush=True)\ntime.sleep(5)\nprint('tick 1')\nraise SystemExit(4)\n"
    )
    manage = [sys.executable, "manage.py", "script"]
    options = {"env": process_env(), "cwd": settings.BASE_DIR, "stdin": subprocess.DEVNULL, "text": True}
    subprocess.run(
        [*manage, "add", "--name", "Ticks", "--file", str(code)], check=True, timeout=60, **options
    )
    waiting = subprocess.Popen(
        [*manage, "run", "ticks", "--wait"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, **options
    )
    try:
        assert waiting.stdout.readline() == "tick 0\n"
        assert waiting.poll() is None  # streamed: the script is still sleeping
        rest, err = waiting.communicate(timeout=120)
    finally:
        waiting.kill()
    assert rest == "tick 1\n"
    assert waiting.returncode == 4
    assert "failed (exit code 4)" in err


def test_versions_diff_and_restore(sent, tmp_path):
    first, second = tmp_path / "v1.py", tmp_path / "v2.py"
    first.write_text("print('one')\n")
    second.write_text("print('two')\nprint('three')\n")
    run("add", "--name", "History", "--file", str(first))
    run("edit", "history", "--file", str(second))

    assert "2 (`script versions history`)" in run("show", "history")[0]
    out, _ = run("versions", "history")
    assert "Versions of History (2 of 2)" in out and "+2 -1" in out and "current" in out
    assert "(manage.py)" in out  # who: the shell's user, from the command line
    listed = json.loads(run("versions", "history", "--json")[0])
    assert listed["current"] == 2 and [v["number"] for v in listed["versions"]] == [2, 1]

    out, err = run("diff", "history", "1")  # to the current version
    assert "-print('one')\n+print('two')\n+print('three')\n" in out
    assert err.strip() == "+2 -1 from version 1 to 2"

    out, _ = run("restore", "history", "1")
    assert "version 1 restored as version 3" in out
    assert Script.objects.get(slug="history").code == "print('one')\n"
    out, _ = run("restore", "history", "3")
    assert "nothing changed" in out

    with pytest.raises(CommandError, match="has no version 8"):
        run("diff", "history", "1", "8")


def test_edit_switches_the_url_trigger_and_show_says_how(sent):
    script = ScriptFactory(slug="hook")
    run("edit", "hook", "--url-trigger", "--url-trigger-get")
    script.refresh_from_db()
    assert script.url_trigger and script.url_trigger_get
    out, _ = run("show", "hook")
    assert "POST and GET /api/scripts/hook/trigger" in out
    run("edit", "hook", "--no-url-trigger")
    assert "URL Trigger" in run("show", "hook")[0] and not Script.objects.get(pk=script.pk).url_trigger
