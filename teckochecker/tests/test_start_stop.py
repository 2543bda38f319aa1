"""`manage.py start --daemon` serves, `manage.py stop` leaves no process behind."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings

from teckochecker.tests.test_settings_env import GOOD_KEYS, clean_env

BASE_DIR = Path(settings.BASE_DIR)

pytestmark = [pytest.mark.slow, pytest.mark.embedded_defaults]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def descendants(pid: int) -> set[int]:
    """Live processes below `pid` (children, grandchildren)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One migrated SQLite database and DATA_DIR for the module; each test leaves it stopped."""
    tmp_path = tmp_path_factory.mktemp("start-stop")
    env = clean_env(
        tmp_path,
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CELERY_QUEUE="start-stop-test",
        **GOOD_KEYS,
        HTTPS_ONLY="false",
    )

    def manage(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    assert manage("migrate", "--no-input", "-v", "0").returncode == 0
    yield SimpleNamespace(
        manage=manage, run_dir=tmp_path / "data" / "run", logs_dir=tmp_path / "data" / "logs", env=env
    )


@pytest.fixture(autouse=True)
def stop_after(site):
    yield
    site.manage("stop")  # never leave processes behind a failed test


def test_start_daemon_serves_and_stop_leaves_nothing_running(site):
    manage, run_dir = site.manage, site.run_dir
    port = free_port()
    started = manage("start", "--daemon", "--port", str(port))
    assert started.returncode == 0, started.stderr + (site.logs_dir / "teckochecker.log").read_text()
    assert f"http://127.0.0.1:{port}/web" in started.stdout
    assert f"http://127.0.0.1:{port}/admin" in started.stdout
    assert f"http://127.0.0.1:{port}/docs" in started.stdout

    pid = int((run_dir / "teckochecker.pid").read_text())
    children = descendants(pid)
    assert len(children) >= 4  # gunicorn master + its worker, celery worker (+ beat), scripts worker

    assert get(f"http://127.0.0.1:{port}/admin/login/") == 200
    deadline = time.monotonic() + 30
    while (status := get(f"http://127.0.0.1:{port}/api/health")) != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert status == 200

    second = manage("start", "--daemon", "--port", str(free_port()))
    assert second.returncode == 1
    assert f"already running (pid {pid})" in second.stderr

    stopped = manage("stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "✓ TeckoChecker stopped" in stopped.stdout
    assert not (run_dir / "teckochecker.pid").exists()
    assert not any(alive(p) for p in {pid, *children})
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()

    # Right after a stop, a new start must not mistake the old beat's heartbeat for a live beat.
    again = manage("start", "--daemon", "--port", str(port))
    assert again.returncode == 0, again.stderr
    assert manage("stop").returncode == 0


def test_stop_when_not_running_is_a_one_line_error(site):
    manage = site.manage
    result = manage("stop")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "not running" in result.stderr


def test_stop_removes_a_stale_pid_file(site):
    manage, run_dir = site.manage, site.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    (run_dir / "teckochecker.pid").write_text(f"{dead.pid}\n")
    result = manage("stop")
    assert result.returncode == 1
    assert not (run_dir / "teckochecker.pid").exists()


def test_foreground_start_restarts_a_child_that_dies(site):
    port = free_port()
    supervisor = subprocess.Popen(
        [sys.executable, "manage.py", "start", "--port", str(port), "--no-beat"],
        cwd=BASE_DIR,
        env=site.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while get_or_none(f"http://127.0.0.1:{port}/admin/login/") != 200 and time.monotonic() < deadline:
            time.sleep(0.3)
        is_worker = lambda p: is_polling_worker(cmdline(p))  # noqa: E731
        worker = next(p for p in descendants(supervisor.pid) if is_worker(p))
        os.kill(worker, 9)
        deadline = time.monotonic() + 30
        replacement = None
        while replacement is None and time.monotonic() < deadline:
            replacement = next((p for p in descendants(supervisor.pid) if is_worker(p) and p != worker), None)
            time.sleep(0.3)
        assert replacement is not None, "the worker was not restarted"
        assert supervisor.poll() is None
        assert get_or_none(f"http://127.0.0.1:{port}/admin/login/") == 200
    finally:
        supervisor.send_signal(signal.SIGTERM)
        _, stderr = supervisor.communicate(timeout=60)
    assert "Celery worker exited" in stderr and "restarting it" in stderr


def test_foreground_start_stops_everything_when_a_child_keeps_dying(site):
    run_dir = site.run_dir
    port = free_port()
    supervisor = subprocess.Popen(
        [sys.executable, "manage.py", "start", "--port", str(port), "--no-beat", "--max-restarts", "0"],
        cwd=BASE_DIR,
        env=site.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while get_or_none(f"http://127.0.0.1:{port}/admin/login/") != 200 and time.monotonic() < deadline:
            time.sleep(0.3)
        children = descendants(supervisor.pid)
        worker = next(p for p in children if is_polling_worker(cmdline(p)))
        os.kill(worker, 9)
        _, stderr = supervisor.communicate(timeout=60)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
    assert supervisor.returncode == 1
    assert "Celery worker exited" in stderr
    assert not any(alive(p) for p in children)
    assert not (run_dir / "teckochecker.pid").exists()


def start_in_foreground(site, *args: str, **env: str) -> tuple[subprocess.Popen, int]:
    shutil.rmtree(site.logs_dir, ignore_errors=True)  # only this start's lines
    port = free_port()
    supervisor = subprocess.Popen(
        [sys.executable, "manage.py", "start", "--port", str(port), *args],
        cwd=BASE_DIR,
        env={**site.env, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    return supervisor, port


def wait_for_log(path: Path, text: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text() if path.exists() else ""
        if text in content:
            return content
        time.sleep(0.3)
    raise AssertionError(f"{text!r} not in {path}:\n{content[-3000:]}")


def test_foreground_start_prints_only_our_lines_and_logs_the_rest_to_files(site):
    # As `make demo` and a .env written by hand set it: kombu used to warn "No hostname was
    # supplied" in every process.
    supervisor, port = start_in_foreground(site, CELERY_BROKER_URL="filesystem://")
    try:
        worker_log = wait_for_log(site.logs_dir / "worker.log", "celery@")
        wait_for_log(site.logs_dir / "worker.log", "DatabaseScheduler")  # beat runs inside the worker
        scripts_log = wait_for_log(site.logs_dir / "scripts-worker.log", "scripts@")
        web_log = wait_for_log(site.logs_dir / "web.log", "Booting worker")
        assert get_or_none(f"http://127.0.0.1:{port}/admin/login/") == 200
        children = descendants(supervisor.pid)
        commands = [cmdline(p) for p in children]
        scripts = [c for c in commands if b"-n\x00scripts@%h" in c]
        assert len(scripts) == 1
        assert b"-Q\x00start-stop-test-scripts\x00" in scripts[0]
        assert b"--concurrency\x002\x00" in scripts[0] and b"--pool\x00threads" in scripts[0]
        assert not any(b"\x00beat\x00" in c for c in commands)  # no beat process of its own
        assert not any(b"django" in c or b"manage.py" in c for c in commands)
        supervisor_cmdline = cmdline(supervisor.pid)
        assert b"supervisor.py" in supervisor_cmdline  # `start` became the small supervisor
    finally:
        supervisor.send_signal(signal.SIGTERM)
        stdout, stderr = supervisor.communicate(timeout=60)
    assert supervisor.returncode == 0, stderr

    lines = stdout.splitlines()
    assert lines[0].startswith("✓ Schedules in step with 0 job(s)")  # sync_schedules, ours too
    assert lines[1:] == [
        "✓ TeckoChecker is running (web server + worker + beat + scripts worker)",
        f"  Web page:  http://127.0.0.1:{port}/web",
        f"  Admin:     http://127.0.0.1:{port}/admin",
        f"  API docs:  http://127.0.0.1:{port}/docs",
        "  Log in with the admin user created by `python manage.py init`.",
        f"  Logs:      {site.logs_dir}",
        "  Press Ctrl-C to stop.",
        "✓ TeckoChecker stopped",
    ]
    expected_stderr = ["No admin user yet: create one with `python manage.py init`."]
    if os.geteuid() == 0:
        expected_stderr.append(
            "⚠ Running as root: the web server, the workers and every dependency they load can change "
            "anything on this machine. Start TeckoChecker as an ordinary user (or use the container, "
            "which runs as the user teckochecker)."
        )
    assert stderr.splitlines() == expected_stderr

    # What the console no longer shows is in the logs, where it belongs.
    worker_log = (site.logs_dir / "worker.log").read_text()
    assert "celery@" in worker_log and "ready" in worker_log
    assert "scripts@" in scripts_log and "ready" in scripts_log
    assert "Listening at" in web_log
    for log in (worker_log, scripts_log, web_log):
        assert "No hostname was supplied" not in log
    for log in (worker_log, scripts_log):
        assert "SecurityWarning" not in log and "-------------- celery@" not in log  # no banners at all


def test_foreground_start_verbose_brings_the_details_back(site):
    supervisor, port = start_in_foreground(site, "--verbose", "--no-beat")
    try:
        wait_for_log(site.logs_dir / "scripts-worker.log", "scripts@")
        wait_for_log(site.logs_dir / "worker.log", "ready")
        assert get_or_none(f"http://127.0.0.1:{port}/admin/login/") == 200
    finally:
        supervisor.send_signal(signal.SIGTERM)
        stdout, stderr = supervisor.communicate(timeout=60)
    shown = stdout + stderr
    assert "[web server] [" in shown and "Booting worker" in shown
    assert "[Celery worker] " in shown and "[tasks]" in shown  # Celery's banner
    assert "[scripts worker] " in shown and "scripts@" in shown


def is_polling_worker(command: bytes) -> bool:
    """The polling worker, not the scripts worker (both are `celery -A teckochecker worker`)."""
    return (
        b"celery\x00-A\x00teckochecker\x00worker" in command
        and b"-Q\x00start-stop-test-webhooks,start-stop-test\x00" in command
    )


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def get_or_none(url: str) -> int | None:
    try:
        return get(url)
    except OSError:
        return None
