"""Start real Celery worker and beat processes against the test database (end-to-end tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

from teckochecker.management.commands.start import polling_queues


def configuration_name() -> str:
    """`sqlite-filesystem` or `postgresql-redis`: the database and broker this run uses."""
    return f"{connection.vendor}-{settings.CELERY_BROKER_URL.split(':', 1)[0]}"


# One folder per configuration: CI runs the SQLite and the PostgreSQL suite at the same time, and
# their processes of one test must not write (or delete) each other's logs.
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts" / "processes" / configuration_name()


def test_database_url() -> str:
    """A DATABASE_URL for the database this test runs against (the test database)."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    user = params.get("USER") or "postgres"
    password = f":{params['PASSWORD']}" if params.get("PASSWORD") else ""
    host = params.get("HOST") or "127.0.0.1"
    port = params.get("PORT") or 5432
    return f"postgresql://{user}{password}@{host}:{port}/{params['NAME']}"


def process_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="teckochecker.test_settings",
        DATABASE_URL=test_database_url(),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        DATA_DIR=str(settings.DATA_DIR),
        ALLOW_LOCAL_URLS="true",
        PYTHONUNBUFFERED="1",
    )
    if settings.OPENAI_BASE_URL:
        env["OPENAI_BASE_URL"] = settings.OPENAI_BASE_URL
    for key in ("MIN_POLL_INTERVAL", "KEBOOLA_TIMEOUT_SECONDS", "OPENAI_TIMEOUT_SECONDS"):
        env[key] = str(getattr(settings, key))
    env.update(extra)
    return env


def _celery(*args: str) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "teckochecker", *args]


class Stack:
    """Worker and beat processes; `kill_worker` simulates a crash (SIGKILL)."""

    def __init__(self, name: str, env: dict[str, str]):
        self.name, self.env = name, env
        self.procs: dict[str, subprocess.Popen] = {}
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def start(self, role: str, args: list[str]) -> subprocess.Popen:
        log = open(ARTIFACTS / f"{self.name}-{role}.log", "ab")  # noqa: SIM115 (closed with the process)
        proc = subprocess.Popen(
            args,
            env=self.env,
            cwd=settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        proc._log = log
        self.procs[role] = proc
        return proc

    def start_worker(self, index: int = 1, concurrency: int = 4) -> subprocess.Popen:
        return self.start(
            f"worker{index}",
            _celery(
                "worker",
                "--pool",
                "threads",
                "--concurrency",
                str(concurrency),
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"{self.name}-w{index}@%h",
                "-Q",
                polling_queues(),
                "-l",
                "info",
            ),
        )

    def start_scripts_worker(self, concurrency: int = 2) -> subprocess.Popen:
        """The worker `start` runs for script runs and environment builds (SCRIPTS_QUEUE)."""
        return self.start(
            "scripts",
            _celery(
                "worker", "--pool", "threads", "--concurrency", str(concurrency), "--without-gossip",
                "--without-mingle", "--without-heartbeat", "-n", f"{self.name}-scripts@%h",
                "-Q", settings.SCRIPTS_QUEUE, "-l", "info",
            ),
        )  # fmt: skip

    def start_beat(self) -> subprocess.Popen:
        schedule = ARTIFACTS / f"{self.name}-beat.schedule"
        return self.start("beat", _celery("beat", "-l", "info", "-s", str(schedule), "--max-interval", "1"))

    def stop(self, role: str, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        proc = self.procs.pop(role, None)
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        self._reap(proc, timeout)

    @staticmethod
    def _reap(proc: subprocess.Popen, timeout: float) -> None:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        proc._log.close()

    def stop_all(self) -> None:
        """SIGTERM to every process first, then wait for each: their shutdowns (a worker
        finishing its tasks, beat saving its schedule) overlap instead of adding up."""
        procs = list(self.procs.values())
        self.procs.clear()
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            self._reap(proc, timeout=20)

    def log(self, role: str) -> str:
        path = ARTIFACTS / f"{self.name}-{role}.log"
        return path.read_text(errors="replace") if path.exists() else ""


@contextlib.contextmanager
def running_stack(
    name: str, *, workers: int = 1, beat: bool = True, scripts_worker: bool = False, **env: str
):
    stack = Stack(name, process_env(**env))
    try:
        for index in range(1, workers + 1):
            stack.start_worker(index)
        if scripts_worker:
            stack.start_scripts_worker()
        if beat:
            stack.start_beat()
        yield stack
    finally:
        stack.stop_all()


def wait_for(predicate, *, timeout: float, interval: float = 0.25, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
