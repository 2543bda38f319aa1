"""The supervisor's steps, driven one by one with small stand-in children (no Django, no Celery)."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import pytest

from teckochecker.supervisor import LEVELS, Plan, RotatingLog, Supervisor, http_answers, line_level

INFO, WARNING, ERROR = LEVELS["INFO"], LEVELS["WARNING"], LEVELS["ERROR"]


def python(code: str) -> list[str]:
    return [sys.executable, "-u", "-c", code]


def make(tmp_path: Path, children: dict[str, str], **plan) -> tuple[Supervisor, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    specs = [
        {"name": n, "argv": python(code), "log": str(tmp_path / f"{n}.log")} for n, code in children.items()
    ]
    supervisor = Supervisor(
        Plan(
            children=specs,
            cwd=str(tmp_path),
            pid_file=str(tmp_path / "pid"),
            health_url="http://127.0.0.1:9/api/health",
            ready_lines=["ready"],
            **plan,
        ),
        out=out,
        err=err,
    )
    return supervisor, out, err


def pump_until_exit(supervisor: Supervisor, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while any(c.alive() for c in supervisor.children) and time.monotonic() < deadline:
        supervisor.pump(0.1)
    for child in supervisor.children:
        child.process.wait(timeout=5)
        supervisor.drain(child)


NOISY_CHILD = """
print("celery beat v5.7.0 (collider) is starting.")
print("__    -    ... __   -        _")
print("2026-12-01 05:58:16,437 INFO kombu.connection: No hostname was supplied")
print("[2026-12-01 05:58:15 +0000] [10546] [INFO] Booting worker with pid: 10549")
print("2026-12-01 05:58:17,000 WARNING polling.tasks: the check of job 4 failed: timeout")
print("    details of that warning")
print("[2026-12-01 05:58:15 +0000] [10546] [ERROR] Worker timeout (pid:10549)")
print("2026-12-01 05:58:18,000 INFO celery.apps.worker: celery@vm ready.")
print("Traceback (most recent call last):")
print('  File "x.py", line 1, in <module>')
print("ZeroDivisionError: division by zero")
"""


def test_line_level_reads_our_records_gunicorns_warnings_and_tracebacks():
    assert line_level("2026-12-01 05:58:16,437 WARNING polling.tasks: x", INFO) == WARNING
    assert line_level("2026-12-01 05:58:16,437 INFO celery: x", ERROR) == INFO
    assert line_level("[2026-12-01 05:58:15 +0000] [1] [ERROR] Worker timeout", INFO) == ERROR
    assert line_level("/x/platforms.py:893: SecurityWarning: superuser", INFO) == WARNING
    assert line_level("Traceback (most recent call last):", INFO) == ERROR
    # Any other line belongs to the record before it (a traceback, a banner after an INFO line).
    assert line_level("  File 'x.py', line 1", ERROR) == ERROR
    assert line_level(" -------------- celery@vm v5.7.0", INFO) == INFO


def test_pump_logs_every_line_and_shows_only_warnings_and_errors(tmp_path):
    supervisor, out, err = make(tmp_path, {"worker": NOISY_CHILD})
    supervisor.start_all()
    pump_until_exit(supervisor)

    log = (tmp_path / "worker.log").read_text()
    assert log.splitlines() == [
        line for line in NOISY_CHILD.strip().splitlines() for line in [eval(line[6:-1])]
    ]
    assert out.getvalue() == ""
    assert err.getvalue().splitlines() == [
        "[worker] 2026-12-01 05:58:17,000 WARNING polling.tasks: the check of job 4 failed: timeout",
        "[worker]     details of that warning",
        "[worker] [2026-12-01 05:58:15 +0000] [10546] [ERROR] Worker timeout (pid:10549)",
        "[worker] Traceback (most recent call last):",
        '[worker]   File "x.py", line 1, in <module>',
        "[worker] ZeroDivisionError: division by zero",
    ]


def test_the_last_words_of_a_child_that_died_unread_reach_the_console(tmp_path):
    # A child that writes and dies before the supervisor reads its pipe: drain() takes its last
    # words, and those are most often why it died.
    supervisor, out, err = make(tmp_path, {"worker": NOISY_CHILD + "raise SystemExit(3)"})
    supervisor.start_all()
    (child,) = supervisor.children
    child.process.wait(timeout=30)
    supervisor.drain(child)
    assert "[worker] ZeroDivisionError: division by zero" in err.getvalue().splitlines()
    assert len(err.getvalue().splitlines()) == 6
    assert "ZeroDivisionError: division by zero" in (tmp_path / "worker.log").read_text()


def test_verbose_shows_every_line(tmp_path):
    supervisor, out, err = make(tmp_path, {"beat": NOISY_CHILD}, verbose=True)
    supervisor.start_all()
    pump_until_exit(supervisor)
    shown = out.getvalue() + err.getvalue()
    assert "[beat] celery beat v5.7.0 (collider) is starting." in shown
    assert "[beat] 2026-12-01 05:58:16,437 INFO kombu.connection: No hostname was supplied" in shown
    assert len(shown.splitlines()) == len(NOISY_CHILD.strip().splitlines())


def test_console_level_info_shows_info_records_but_not_banners(tmp_path):
    supervisor, out, err = make(tmp_path, {"worker": NOISY_CHILD}, console_level="INFO")
    supervisor.start_all()
    pump_until_exit(supervisor)
    assert "celery@vm ready." in out.getvalue()
    assert "is starting" not in out.getvalue() + err.getvalue()


def test_a_child_that_dies_is_restarted_until_the_limit_then_everything_stops(tmp_path):
    supervisor, out, err = make(
        tmp_path,
        {"worker": "print('booting'); raise SystemExit(3)", "web": "import time; time.sleep(60)"},
        max_restarts=1,
    )
    supervisor.start_all()
    web = supervisor.children[1].process
    supervisor.children[0].process.wait(timeout=10)

    assert supervisor.check_children() is True
    assert "⚠ The worker exited (code 3); restarting it (1/1 in 10 minutes)." in err.getvalue()
    supervisor.children[0].process.wait(timeout=10)
    assert supervisor.check_children() is False
    assert supervisor.exit_code == 1
    assert "✗ The worker exited (code 3); stopping the others." in err.getvalue()
    assert "    booting" in err.getvalue()  # the end of its log, to say why
    assert (tmp_path / "worker.log").read_text() == "booting\nbooting\n"

    supervisor.stop_all()
    assert web.poll() is not None
    assert supervisor.children[1].process is web  # the healthy child was never restarted


def test_no_restart_allowed_means_the_first_death_stops_everything(tmp_path):
    supervisor, _out, err = make(tmp_path, {"worker": "raise SystemExit(1)"}, max_restarts=0)
    supervisor.start_all()
    supervisor.children[0].process.wait(timeout=10)
    assert supervisor.check_children() is False
    assert "restarting" not in err.getvalue()
    supervisor.stop_all()


def test_stop_all_sends_sigterm_and_keeps_the_childrens_last_words(tmp_path):
    child = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: (sys.stdout.write("stopping cleanly\\n"), sys.exit(0)))
sys.stdout.write("up\\n")
while True:
    time.sleep(0.1)
"""
    supervisor, _out, _err = make(tmp_path, {"worker": child})
    supervisor.start_all()
    deadline = time.monotonic() + 10
    while "up" not in (tmp_path / "worker.log").read_text() and time.monotonic() < deadline:
        supervisor.pump(0.1)
    supervisor.stop_all()
    assert supervisor.children[0].process.returncode == 0
    assert (tmp_path / "worker.log").read_text() == "up\nstopping cleanly\n"


def test_rotating_log_keeps_the_newest_lines_and_a_fixed_number_of_old_files(tmp_path):
    log = RotatingLog(tmp_path / "web.log", max_bytes=100, backups=2)
    for n in range(10):
        log.write(f"{n:02d} {'x' * 36}\n".encode())  # 40 bytes: two lines per file
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["web.log", "web.log.1", "web.log.2"]
    assert (tmp_path / "web.log").read_text().split()[::2] == ["08", "09"]
    assert (tmp_path / "web.log.1").read_text().split()[::2] == ["06", "07"]
    assert (tmp_path / "web.log.2").read_text().split()[::2] == ["04", "05"]


def test_http_answers_only_once_a_server_speaks_http(tmp_path):
    import http.server
    import socket
    import threading

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert http_answers(f"http://127.0.0.1:{port}/api/health", timeout=1) is False

    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    try:
        assert http_answers(f"http://127.0.0.1:{server.server_port}/api/health") is True  # a 501 is an answer
    finally:
        server.server_close()
    with pytest.raises(ValueError):
        http_answers("https://example.com/")


def test_the_supervisor_imports_neither_django_nor_celery():
    import subprocess

    path = Path(__file__).resolve().parents[1] / "supervisor.py"
    code = (
        "import runpy, sys; runpy.run_path(sys.argv[1], run_name='not_main'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'celery', 'teckochecker'}))"
    )
    result = subprocess.run(
        [sys.executable, "-P", "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_line_without_end_is_shown_once_it_is_too_long_to_wait_for(tmp_path):
    child = "import sys; sys.stdout.write('Traceback (most recent call last):' + 'x' * 70000); sys.stdout.flush(); import time; time.sleep(30)"
    supervisor, _out, err = make(tmp_path, {"worker": child})
    supervisor.start_all()
    deadline = time.monotonic() + 10
    while not err.getvalue() and time.monotonic() < deadline:
        supervisor.pump(0.1)
    assert err.getvalue().startswith("[worker] Traceback (most recent call last):xxx")
    supervisor.stop_all()


def test_a_console_that_went_away_does_not_stop_the_supervisor(tmp_path):
    closed = io.StringIO()
    closed.close()
    supervisor, _out, _err = make(tmp_path, {"worker": "print('x')"})
    supervisor.err = closed
    supervisor.say("⚠ anything", error=True)  # would raise ValueError on the closed stream
    supervisor.start_all()
    pump_until_exit(supervisor)
    assert (tmp_path / "worker.log").read_text() == "x\n"
