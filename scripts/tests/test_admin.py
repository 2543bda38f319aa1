"""The admin: scripts through the services, run-now and rebuild actions, runs read-only."""

import pytest
from django.test import Client

from scripts import services
from scripts.models import EnvState, RunState, Script, ScriptRun, ScriptVersion
from scripts.tests.factories import ScriptFactory, ScriptRunFactory
from scripts.validation import default_python_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


def _form(**overrides):
    data = {
        "name": "Nightly Backup",
        "folder": "",
        "code": "print('backup')\n",
        "requirements": "",
        "python_version": default_python_version(),
        "timeout_seconds": 60,
        "memory_mb": 256,
        "cpu_seconds": 60,
        "enabled": "on",
        "schedule_type": "cron",
        "schedule_every": "",
        "schedule_unit": "",
        "schedule_cron": "0 3 * * *",
        "schedule_timezone": "Europe/Prague",
        "overlap": "skip",
        "notify_emails": "",
        "scriptrun_set-TOTAL_FORMS": 0,
        "scriptrun_set-INITIAL_FORMS": 0,
        "runs-TOTAL_FORMS": 0,
        "runs-INITIAL_FORMS": 0,
        "versions-TOTAL_FORMS": 0,
        "versions-INITIAL_FORMS": 0,
    }
    data.update(overrides)
    return data


def test_add_goes_through_the_service(staff, sent):
    response = staff.post("/admin/scripts/script/add/", _form())
    assert response.status_code == 302, (
        response.context["adminform"].form.errors if response.context else response.status_code
    )
    script = Script.objects.get()
    assert script.slug == "nightly-backup" and script.periodic_task is not None
    assert script.periodic_task.crontab.hour == "3"


def test_a_bad_cron_and_a_syntax_error_show_on_the_form(staff, sent):
    response = staff.post("/admin/scripts/script/add/", _form(schedule_cron="0 3 *", code="if x\n"))
    assert response.status_code == 200
    text = response.content.decode()
    assert "Line 1: " in text and "5 fields" in text
    assert not Script.objects.exists()


def test_run_now_and_rebuild_actions(staff, sent):
    script = ScriptFactory()
    staff.post("/admin/scripts/script/", {"action": "run_now", "_selected_action": [script.pk]})
    assert ScriptRun.objects.get().trigger == "manual"
    staff.post("/admin/scripts/script/", {"action": "rebuild_environment", "_selected_action": [script.pk]})
    script.refresh_from_db()
    assert script.env_state == EnvState.CREATING


def test_runs_are_read_only_and_show_their_output(staff):
    run = ScriptRunFactory(state=RunState.FAILED, output="Traceback <oops>\n")
    page = staff.get(f"/admin/scripts/scriptrun/{run.pk}/change/")
    assert page.status_code == 200
    assert "Traceback &lt;oops&gt;" in page.content.decode()
    assert staff.get("/admin/scripts/scriptrun/add/").status_code == 403
    assert staff.get("/admin/scripts/scriptrun/").status_code == 200


def test_a_script_page_shows_its_environment_and_runs(staff):
    script = ScriptFactory(env_error="", env_python="3.11.7")
    run = ScriptRunFactory(script=script, state=RunState.SUCCEEDED)
    page = staff.get(f"/admin/scripts/script/{script.pk}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "3.11.7" in text and f'href="/admin/scripts/scriptrun/{run.pk}/change/"' in text


def test_saving_code_in_the_admin_keeps_a_version_and_a_stale_form_is_refused(staff, sent, admin_user):
    script = services.script_create(name="Nightly Backup", code="print('one')\n", author="alice")
    url = f"/admin/scripts/script/{script.pk}/change/"
    opened = staff.get(url)
    assert 'name="base_version" value="1"' in opened.content.decode()
    assert "Versions (open one" in opened.content.decode()

    saved = staff.post(url, _form(code="print('two')\r\n", base_version=1))  # a browser's line ends
    assert saved.status_code == 302
    assert ScriptVersion.objects.get(script=script, number=2).author == admin_user.username

    stale = staff.post(url, _form(code="print('three')\n", base_version=1))
    assert stale.status_code == 200
    assert "version 2 was saved by admin" in stale.content.decode()
    script.refresh_from_db()
    assert script.code == "print('two')\n"


def test_a_version_page_shows_its_diff_and_the_actions_compare_and_restore(staff, sent):
    script = services.script_create(name="Restorable", code="print('one')\n")
    services.script_update(script=script, code="print('two')\n")
    first, second = (ScriptVersion.objects.get(script=script, number=n) for n in (1, 2))

    page = staff.get(f"/admin/scripts/scriptversion/{second.pk}/change/").content.decode()
    assert "-print(&#x27;one&#x27;)" in page and "+print(&#x27;two&#x27;)" in page

    compare = staff.post(
        "/admin/scripts/scriptversion/",
        {"action": "compare", "_selected_action": [first.pk, second.pk]},
    )
    assert compare.status_code == 200 and "version 1 → 2 (+1 -1)" in compare.content.decode()

    staff.post("/admin/scripts/scriptversion/", {"action": "restore", "_selected_action": [first.pk]})
    script.refresh_from_db()
    assert script.code == "print('one')\n" and script.version == 3
    assert ScriptVersion.objects.get(script=script, number=3).restored_from == 1
