"""Services hand work to Celery by task name (teckochecker/tasks_out.py)."""

import ast
import logging
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
