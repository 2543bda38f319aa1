"""Services hand work to Celery by task name (teckochecker/tasks_out.py)."""

import ast
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from polling import tasks
from teckochecker.tasks_out import task_send, task_send_on_commit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(
        tasks.poll_job, "apply_async", lambda args, kwargs, **options: calls.append((args, kwargs, options))
    )
    return calls


def test_a_task_is_sent_by_name_with_its_arguments_and_queue(sent):
    assert task_send("polling.tasks.poll_job", args=(7,), kwargs={"force": True}) is True
    assert task_send("polling.tasks.poll_job", args=[8], queue="elsewhere") is True
    assert sent == [([7], {"force": True}, {}), ([8], {}, {"queue": "elsewhere"})]


def test_an_unknown_task_name_is_a_bug_not_a_broker_outage():
    with pytest.raises(KeyError):
        task_send("polling.tasks.no_such_task")


def test_a_broker_that_is_down_is_logged_and_reported(monkeypatch, caplog):
    def down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.poll_job, "apply_async", down)
    with caplog.at_level(logging.WARNING, logger="teckochecker.tasks_out"):
        assert task_send("polling.tasks.poll_job", args=[1]) is False
    assert "polling.tasks.poll_job" in caplog.text and "broker unreachable" in caplog.text


@pytest.mark.django_db
def test_on_commit_sends_after_the_commit_and_never_after_a_rollback(
    sent, django_capture_on_commit_callbacks
):
    from django.db import transaction

    with django_capture_on_commit_callbacks(execute=True):
        task_send_on_commit("polling.tasks.poll_job", args=[1])
        assert sent == []  # not before the commit
    assert sent == [([1], {}, {})]

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                task_send_on_commit("polling.tasks.poll_job", args=[2])
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
    assert callbacks == [] and sent == [([1], {}, {})]


def test_no_service_imports_a_tasks_module():
    """Tasks import services; services name tasks (tasks_out), so there is no import loop."""
    offenders = []
    for path in [*ROOT.glob("*/services.py"), *ROOT.glob("*/services/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if any(name.endswith(".tasks") or ".tasks." in name for name in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_a_process_that_never_imported_the_tasks_modules_finds_the_task(tmp_path):
    """manage.py commands and the web server send tasks they never imported, from many threads."""
    # Eight first sends at once, as concurrent webhook requests in the web server make them.
    code = (
        "import sys, threading, django\n"
        "django.setup()\n"
        "from teckochecker.tasks_out import task_send\n"
        "assert 'polling.tasks' not in sys.modules, 'imported already'\n"
        "start, results = threading.Barrier(8), []\n"
        "def send():\n"
        "    start.wait()\n"
        "    try:\n"
        "        results.append(task_send('polling.tasks.poll_job', args=[5]))\n"
        "    except Exception as exc:\n"
        "        results.append(repr(exc))\n"
        "threads = [threading.Thread(target=send) for _ in range(8)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "assert results == [True] * 8, results\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "teckochecker.test_settings",
        "DATA_DIR": str(tmp_path),  # the message lands in a broker folder of its own
        "CELERY_QUEUE": "tasks-out-test",
        "CELERY_BROKER_URL": "filesystem://",
    }
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert [p for p in (tmp_path / "broker").rglob("*") if p.is_file()]  # the message was written
