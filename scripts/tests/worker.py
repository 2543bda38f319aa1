"""A real scripts worker for end-to-end tests: a Celery worker on SCRIPTS_QUEUE, started the way
`manage.py start` starts it, against the test database (import the fixture where it is used)."""

from __future__ import annotations

import sys

import pytest
from django.conf import settings

from polling.tests.stack import Stack, process_env


def start_scripts_worker(stack: Stack, *, concurrency: int = 2):
    return stack.start(
        "scripts-worker",
        [
            sys.executable, "-m", "celery", "-A", "teckochecker", "worker",
            "--pool", "threads", "--concurrency", str(concurrency),
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-n", f"{stack.name}-scripts@%h", "-Q", settings.SCRIPTS_QUEUE, "-l", "info",
        ],
    )  # fmt: skip


@pytest.fixture
def scripts_worker(request, transactional_db):
    stack = Stack(request.node.name, process_env())
    start_scripts_worker(stack)
    yield stack
    stack.stop_all()
