"""The Scripts tab in Chromium: create a script, write code, save, run it on a real scripts
worker (sandbox and all), see its output; the schedule builder; errors in place."""

from __future__ import annotations

import os
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from polling.models import PollingJob
from scripts.models import RunState, Script, ScriptRun
from scripts.tests.factories import ScriptEnvVarFactory, ScriptFactory, ScriptRunFactory
from scripts.tests.worker import scripts_worker  # noqa: F401 (fixture)
from secrets_vault.tests.factories import OpenAISecretFactory
from web.tests.browser import (
    ROOT,
    code_editor,
    expect,
    inline_handlers,
    open_tab,
    screenshot,
    set_code,
    sign_in,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

DOCS_SCREENSHOT = ROOT / "docs" / "screenshots" / "scripts-tab.png"
XSS = "<img src=x onerror=alert(1)>"
# A run waits for its environment (a uv venv) and a worker slot; generous for a loaded machine.
RUN_TIMEOUT_MS = 90_000


@pytest.mark.usefixtures("scripts_worker")
def test_create_write_save_run_and_see_the_output(page, admin_user):
    sign_in(page, "#scripts")
    expect()(page.locator("#scripts-table")).to_contain_text("No scripts yet")
    page.click("#create-script")
    page.fill("#script-create-form [name=name]", "Hello World")
    page.fill("#script-create-form [name=folder]", "demo")
    page.click("#script-create-form button[type=submit]")

    # Creating is quick, and the editor opens at once (PRD "Simple Creation Process").
    expect()(page.locator("#script-title")).to_have_text("Hello World")
    expect()(page.locator("#script-slug")).to_have_text("hello-world")
    assert re.search(r"#scripts/\d+$", page.url)
    script = Script.objects.get(slug="hello-world")
    assert script.folder == "demo"

    set_code(page, "import os\nprint('hello from', os.environ['GREETING'])\nprint('bye')\n")
    # The code saves itself a second later; the variables below wait for the save button.
    expect()(page.locator("#script-save-state")).to_have_text("✓ saved (v2)")
    page.click("#add-env-var")
    page.locator("#script-env-vars .env-name").fill("GREETING")
    page.locator("#script-env-vars .env-value").fill("the sandbox")
    expect()(page.locator("#script-dirty")).to_be_visible()
    page.click("#script-save")
    expect()(page.locator("#script-dirty")).to_be_hidden()
    script.refresh_from_db()
    assert script.code.startswith("import os\nprint('hello from'")
    assert [(v.name, v.value) for v in script.env_vars.all()] == [("GREETING", "the sandbox")]

    page.click("#script-run")
    output = page.locator("#run-output")
    expect()(output).to_have_text("hello from the sandbox\nbye\n", timeout=RUN_TIMEOUT_MS)
    expect()(page.locator("#run-head .run-state")).to_have_text(re.compile("succeeded"))
    expect()(page.locator("#runs-table tr.run-row")).to_have_count(1)
    expect()(page.locator("#runs-table tr.run-row")).to_contain_text("manual")
    run = ScriptRun.objects.get(script=script)
    assert (run.state, run.exit_code) == (RunState.SUCCEEDED, 0)
    expect()(page.locator("#env-state")).to_have_text(re.compile("ready"))

    # A failing script: its output and exit code, and the list shows the last run.
    set_code(page, "import sys\nprint('oops', file=sys.stderr)\nsys.exit(3)\n")
    page.click("#script-run")  # saves the edit first
    expect()(page.locator("#run-head")).to_contain_text("exit 3", timeout=RUN_TIMEOUT_MS)
    expect()(output).to_have_text("oops\n")
    expect()(page.locator("#runs-table tr.run-row")).to_have_count(2)
    page.click("#script-detail a:has-text('all scripts')")
    row = page.locator("#scripts-table tr.script-row", has_text="Hello World")
    expect()(row).to_contain_text("failed")
    expect()(row).to_contain_text("ready")


def test_a_syntax_error_is_marked_on_its_line_and_nothing_is_saved(page, admin_user):
    script = ScriptFactory(name="Broken", slug="broken", code="print('ok')\n")
    sign_in(page, f"#scripts/{script.pk}")
    set_code(page, "x = 1\nprint('unclosed'\ny = 2\n")
    # The auto-save a second later marks the line but leaves the cursor where the user types.
    page.keyboard.press("Control+End")
    marked = page.locator("#script-code .cm-lintRange-error")
    expect()(marked).to_have_count(1)
    page.keyboard.insert_text("z = 3\n")
    expect()(code_editor(page)).to_have_text("x = 1\nprint('unclosed'\ny = 2\nz = 3\n", use_inner_text=True)
    page.click("#script-save")
    slot = page.locator("#script-form [data-error-for=code]")
    expect()(slot).to_contain_text(re.compile(r"[Ll]ine \d"))
    expect()(marked).to_have_count(1)
    expect()(page.locator("#script-dirty")).to_be_visible()
    script.refresh_from_db()
    assert script.code == "print('ok')\n"

    page.fill("#script-form [name=timeout_seconds]", "abc")
    set_code(page, "print('fixed')\n")
    page.click("#script-save")
    expect()(page.locator("#script-form [data-error-for=timeout_seconds]")).not_to_be_empty()
    assert "[object Object]" not in page.content()

    # Deleting asks first, then nothing of the script stays, unsaved edits included.
    page.click("#script-delete")
    expect()(page.locator("#modal .confirm-message")).to_contain_text("Broken")
    page.click("#modal .btn-danger")
    expect()(page.locator("#scripts-table")).to_contain_text("No scripts yet")
    assert not Script.objects.exists()
    assert page.locator("#script-form").count() == 0


def test_schedule_builder_previews_the_next_runs_and_saves(page, admin_user):
    script = ScriptFactory(name="Nightly", slug="nightly")
    sign_in(page, f"#scripts/{script.pk}")
    preview = page.locator("#schedule-preview")
    expect()(preview).to_contain_text("only when you press run")

    page.select_option("#schedule-type", "interval")
    page.fill("#schedule-every", "15")
    page.select_option("#schedule-unit", "minutes")
    expect()(preview.locator("li")).to_have_count(5)

    page.select_option("#schedule-type", "cron")
    page.fill("#schedule-cron", "61 * * * *")
    expect()(preview.locator(".error")).not_to_be_empty()
    page.select_option("#schedule-preset", "0 3 * * *")
    expect()(page.locator("#schedule-cron")).to_have_value("0 3 * * *")
    page.fill("#schedule-timezone", "Europe/Prague")
    expect()(preview.locator("li")).to_have_count(5)
    # The viewer is in Europe/Prague too (see the page fixture): 03:00 local each time.
    for text in preview.locator("li").all_text_contents():
        assert " 03:00:00" in text, text
    page.click("#script-save")
    expect()(page.locator("#script-dirty")).to_be_hidden()
    script.refresh_from_db()
    assert (script.schedule_type, script.schedule_cron, script.schedule_timezone) == (
        "cron",
        "0 3 * * *",
        "Europe/Prague",
    )

    open_tab(page, "scripts")
    row = page.locator("#scripts-table tr.script-row", has_text="Nightly")
    expect()(row).to_contain_text("cron 0 3 * * * (Europe/Prague)")
    expect()(row.locator("time.countdown")).to_have_text(re.compile(r"^in \d"))
    row.locator("[data-action=delete]").click()
    page.click("#modal .btn-danger")
    expect()(page.locator("#scripts-table")).to_contain_text("No scripts yet")
    assert not Script.objects.exists()


def test_user_text_in_scripts_and_output_renders_literally(page, admin_user):
    secret = OpenAISecretFactory(name="openai-prod", value="sk-never-shown-1234")
    script = ScriptFactory(name=XSS, slug="xss", folder=XSS, code=f"print({XSS!r})\n")
    ScriptEnvVarFactory(script=script, name="OPENAI_API_KEY", value="", secret=secret)
    ScriptRunFactory(script=script, state=RunState.FAILED, exit_code=1, output=f"{XSS}\n", message=XSS)
    sign_in(page, "#scripts")
    expect()(page.locator("#scripts-table a.script-name")).to_have_text(XSS)
    page.locator("#scripts-table a.script-name").click()
    expect()(page.locator("#script-title")).to_have_text(XSS)
    expect()(page.locator("#run-output")).to_have_text(f"{XSS}\n")
    expect()(page.locator("#run-message")).to_have_text(XSS)
    expect()(page.locator("#script-env-vars .env-secret")).to_have_value("openai-prod")
    assert page.locator("img[src=x]").count() == 0
    assert inline_handlers(page) == []
    assert "sk-never-shown-1234" not in page.content()
    assert page.dialogs == []


def test_a_script_with_runs_searching_their_output_and_the_screenshot(page, admin_user):
    now = timezone.now()
    code = (
        "import json\nimport os\nimport urllib.request\n\n"
        'URL = "https://api.example.com/orders?since=yesterday"\n\n\n'
        "def main() -> None:\n"
        '    """Fetch yesterday\'s orders and print a short report."""\n'
        "    with urllib.request.urlopen(URL, timeout=30) as answer:\n"
        "        orders = json.load(answer)\n"
        '    total = sum(o["amount"] for o in orders)\n'
        '    print(f"{len(orders)} orders, {total:.2f} EUR")\n\n\n'
        'if __name__ == "__main__":\n'
        "    main()\n"
    )
    report = ScriptFactory(
        name="Daily orders report",
        slug="daily-orders-report",
        folder="reports",
        code=code,
        requirements="",
        network=True,
        schedule_type="cron",
        schedule_cron="0 6 * * 1-5",
        schedule_timezone="Europe/Prague",
        env_python="3.11.2",
        env_disk_bytes=21_500_000,
    )
    ScriptEnvVarFactory(script=report, name="REPORT_TO", value="ops@example.com")
    for minutes, state, exit_code, output in (
        (2880, RunState.SUCCEEDED, 0, "38 orders, 1912.40 EUR\n"),
        (1440, RunState.FAILED, 1, "urllib.error.URLError: <urlopen error timed out>\n"),
        (5, RunState.SUCCEEDED, 0, "42 orders, 2318.90 EUR\n"),
    ):
        ScriptRunFactory(
            script=report,
            state=state,
            exit_code=exit_code,
            output=output,
            queued_at=now - timedelta(minutes=minutes),
            started_at=now - timedelta(minutes=minutes, seconds=-1),
            finished_at=now - timedelta(minutes=minutes, seconds=-3),
            peak_memory_kb=18_432,
            cpu_seconds=0.21,
        )
    ScriptFactory(
        name="Backup database",
        slug="backup-database",
        folder="ops",
        schedule_type="interval",
        schedule_every=6,
        schedule_unit="hours",
    )
    ScriptFactory(name="Health check", slug="health-check", folder="ops", schedule_type="startup")
    sign_in(page, f"#scripts/{report.pk}")
    expect()(page.locator("#run-output")).to_have_text("42 orders, 2318.90 EUR\n")
    expect()(page.locator("#schedule-preview li")).to_have_count(5)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 1400, "height": 1280})
        screenshot(page, DOCS_SCREENSHOT)

    # Search in the output of runs, and the state filter.
    page.fill("#runs-search", "URLError")
    expect()(page.locator("#runs-table tr.run-row")).to_have_count(1)
    expect()(page.locator("#runs-table tr.run-row")).to_contain_text("failed")
    page.fill("#runs-search", "")
    page.select_option("#runs-state", "succeeded")
    expect()(page.locator("#runs-table tr.run-row")).to_have_count(2)
    page.fill("#runs-search", "no such text")
    expect()(page.locator("#runs-table")).to_contain_text("No run matches.")


def test_a_polling_job_can_run_a_script(page, admin_user):
    OpenAISecretFactory(name="openai-prod")
    script = ScriptFactory(name="Process results", slug="process-results")
    sign_in(page, "#jobs")
    page.click("#create-job")
    form = page.locator("#job-form")
    form.locator("[name=name]").fill("Embeddings, then my script")
    form.locator("[name=batch_ids]").fill("batch_s1\nbatch_s2")
    form.locator("[name=action_type]").select_option("script")
    expect()(form.locator("fieldset[data-action=keboola]")).to_be_hidden()
    expect()(form.locator("[name=action_script_id] option:checked")).to_have_text(
        "Process results (process-results)"
    )
    form.locator("button[type=submit]").click()
    expect()(page.locator("#modal")).not_to_be_visible()
    job = PollingJob.objects.get(name="Embeddings, then my script")
    assert (job.action_type, job.action_script_id) == ("script", script.pk)
    row = page.locator("#jobs-table tr.job-row", has_text="Embeddings, then my script")
    expect()(row).to_contain_text(f"script #{script.pk}")
    row.locator("a.job-name").click()
    page.click("#job-script-link")
    expect()(page.locator("#script-title")).to_have_text("Process results")
