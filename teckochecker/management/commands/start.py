"""`manage.py start`: the web server, a Celery worker and Celery beat, supervised together.

The supervisor is this process: it starts the three as children, forwards SIGINT/SIGTERM to
them, and stops everything if one of them dies, so a half-running system never lingers.
`--daemon` runs the same supervisor detached, with a pid file that `manage.py stop` uses.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import CommandError
from django.db import connections
from django.db.migrations.executor import MigrationExecutor

from teckochecker.cli import TeckoCommand
from teckochecker.processes import pid_alive

STOP_GRACE_SECONDS = 20
RESTART_WINDOW_SECONDS = 600  # how long children get to finish their work after SIGTERM
STARTUP_TIMEOUT_SECONDS = 60


def run_dir() -> Path:
    path = Path(settings.DATA_DIR) / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pid_file() -> Path:
    return run_dir() / "teckochecker.pid"


def log_file() -> Path:
    return run_dir() / "teckochecker.log"


def running_pid() -> int | None:
    """The pid of a live supervisor from the pid file; a stale pid file is removed."""
    path = pid_file()
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if pid_alive(pid):
        return pid
    path.unlink(missing_ok=True)
    return None


def executable(name: str) -> list[str]:
    """The venv's own console script next to the running Python, or `python -m name`."""
    script = Path(sys.executable).parent / name
    return [str(script)] if script.exists() else [sys.executable, "-m", name]


def _die_with_parent() -> None:
    """Children get SIGTERM if the supervisor is killed outright (Linux), instead of lingering."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def wait_for_http(host: str, port: int, timeout: float, alive=lambda: True) -> bool:
    """Wait until the web server answers HTTP (any status: the app is loaded), not just until
    its port accepts connections, which gunicorn does before its worker has imported Django."""
    deadline = time.monotonic() + timeout
    url = f"http://{host}:{port}/api/health"
    while time.monotonic() < deadline and alive():
        try:
            with urllib.request.urlopen(url, timeout=max(1.0, deadline - time.monotonic())):  # noqa: S310
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            time.sleep(0.3)
    return False


def display_host(host: str) -> str:
    """The host part of a URL that reaches a server listening on `host`."""
    if host in {"", "0.0.0.0", "::"}:  # noqa: S104 (not a bind: the address to connect to)
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen | None = None


class Command(TeckoCommand):
    help = (
        "Run the web server, a Celery worker and Celery beat together; Ctrl-C stops all of them. "
        "--daemon runs them in the background (stop with `python manage.py stop`)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--daemon", action="store_true", help="Detach; log to DATA_DIR/run/teckochecker.log."
        )
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=8000, help="Port to listen on (default 8000).")
        parser.add_argument("--no-beat", action="store_true", help="Do not run Celery beat here.")
        parser.add_argument("--concurrency", type=int, default=8, help="Celery worker threads (default 8).")
        parser.add_argument(
            "--max-restarts",
            type=int,
            default=5,
            help="Restart a child that exits up to this many times in 10 minutes (default 5; 0: stop all).",
        )

    def handle(self, *args, **options) -> None:
        if options["concurrency"] < 1:
            raise CommandError("--concurrency must be at least 1.")
        if options["max_restarts"] < 0:
            raise CommandError("--max-restarts must be 0 or more.")
        if not 1 <= options["port"] <= 65535:
            raise CommandError("--port must be a port number (1-65535).")
        pid = running_pid()
        if pid is not None:
            raise CommandError(
                f"TeckoChecker is already running (pid {pid}); stop it with `python manage.py stop`."
            )
        if options["daemon"]:
            self.start_daemon(**options)
        else:
            self.supervise(**options)

    # --- daemon -----------------------------------------------------------------------------
    def start_daemon(
        self, *, host: str, port: int, no_beat: bool, concurrency: int, max_restarts: int, **_
    ) -> None:
        argv = [sys.executable, str(settings.BASE_DIR / "manage.py"), "start"]
        argv += ["--host", host, "--port", str(port), "--concurrency", str(concurrency)]
        argv += ["--max-restarts", str(max_restarts)]
        if no_beat:
            argv.append("--no-beat")
        log = log_file()
        with open(log, "ab") as out:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the terminal closing; not hit by its Ctrl-C
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                cwd=settings.BASE_DIR,
            )
        started = wait_for_http(
            display_host(host), port, STARTUP_TIMEOUT_SECONDS, alive=lambda: process.poll() is None
        )
        if not started:
            if process.poll() is None:
                process.terminate()
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise CommandError("\n".join([f"TeckoChecker did not start; see {log}. Its last lines:", *tail]))
        self.print_urls(host, port, no_beat=no_beat)
        self.stdout.write(f"  Running in the background (pid {process.pid}); log: {log}")
        self.stdout.write("  Stop it with `python manage.py stop`.")

    # --- foreground supervisor --------------------------------------------------------------
    def supervise(
        self, *, host: str, port: int, no_beat: bool, concurrency: int, max_restarts: int, **_
    ) -> None:
        self.prepare_database()
        if not no_beat:
            self.refuse_second_beat()
        connections.close_all()  # children open their own; do not hold SQLite open here

        children = self.children(host=host, port=port, no_beat=no_beat, concurrency=concurrency)
        stop_requested: list[int] = []

        def on_signal(signum, _frame) -> None:
            if stop_requested:  # a second Ctrl-C: no more waiting
                for child in children:
                    if child.process and child.process.poll() is None:
                        child.process.kill()
            stop_requested.append(signum)

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGHUP, on_signal)

        path = pid_file()
        path.write_text(f"{os.getpid()}\n")
        exit_code = 0
        try:
            for child in children:
                child.process = subprocess.Popen(
                    child.argv,
                    stdin=subprocess.DEVNULL,
                    # Own process group: a terminal Ctrl-C reaches only this supervisor, which
                    # then sends each child exactly one SIGTERM (a second SIGINT would make the
                    # Celery worker abandon running tasks).
                    process_group=0,
                    preexec_fn=_die_with_parent,
                    cwd=settings.BASE_DIR,
                )
            restarts: dict[str, list[float]] = {c.name: [] for c in children}

            def all_alive() -> bool:
                return not stop_requested and all(c.process.poll() is None for c in children)

            if wait_for_http(display_host(host), port, STARTUP_TIMEOUT_SECONDS, alive=all_alive):
                self.print_urls(host, port, no_beat=no_beat)
                self.stdout.write("  Press Ctrl-C to stop.")
            while not stop_requested:
                dead = next((c for c in children if c.process.poll() is not None), None)
                if dead is not None:
                    # A child that dies now and then (e.g. a worker losing Redis during a restart)
                    # is started again; one that keeps dying stops everything.
                    now = time.monotonic()
                    recent = [t for t in restarts[dead.name] if now - t < RESTART_WINDOW_SECONDS]
                    if len(recent) >= max_restarts:
                        self.stderr.write(
                            f"✗ The {dead.name} exited (code {dead.process.returncode}); stopping the others."
                        )
                        exit_code = 1
                        break
                    restarts[dead.name] = [*recent, now]
                    self.stderr.write(
                        f"⚠ The {dead.name} exited (code {dead.process.returncode}); restarting it "
                        f"({len(recent) + 1}/{max_restarts} in {RESTART_WINDOW_SECONDS // 60} minutes)."
                    )
                    time.sleep(1)
                    dead.process = subprocess.Popen(
                        dead.argv,
                        stdin=subprocess.DEVNULL,
                        process_group=0,
                        preexec_fn=_die_with_parent,
                        cwd=settings.BASE_DIR,
                    )
                time.sleep(0.5)
        finally:
            self.stop_children(children)
            if path.read_text().strip() == str(os.getpid()):
                path.unlink(missing_ok=True)
        if exit_code:
            raise SystemExit(exit_code)
        self.stdout.write("✓ TeckoChecker stopped")

    def prepare_database(self) -> None:
        executor = MigrationExecutor(connections["default"])
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            self.stdout.write("Applying database migrations…")
            call_command("migrate", interactive=False, verbosity=0)
        if not get_user_model().objects.filter(is_superuser=True, is_active=True).exists():
            self.stderr.write(
                self.style.WARNING("No admin user yet: create one with `python manage.py init`.")
            )
        if "sync_schedules" in get_commands():
            call_command("sync_schedules")
        else:
            self.stderr.write(
                self.style.WARNING("sync_schedules is not available yet: schedules not synced.")
            )

    def refuse_second_beat(self) -> None:
        try:
            from polling.services.health import beat_alive_elsewhere
        except (ImportError, AttributeError):
            return  # the health service does not exist yet
        if beat_alive_elsewhere():
            raise CommandError(
                "Another Celery beat is already running against this database; "
                "stop it or start this one with --no-beat."
            )

    def children(self, *, host: str, port: int, no_beat: bool, concurrency: int) -> list[Child]:
        celery = [*executable("celery"), "-A", "teckochecker"]
        children = [
            Child(
                "web server",
                [
                    *executable("gunicorn"),
                    "teckochecker.wsgi:application",
                    "--bind",
                    f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                    # One process with threads keeps the web server's memory small.
                    "--workers",
                    "1",
                    "--threads",
                    "8",
                    "--graceful-timeout",
                    str(STOP_GRACE_SECONDS - 5),
                ],
            ),
            Child(
                "Celery worker",
                [
                    *celery,
                    "worker",
                    "--pool",
                    "threads",
                    "--concurrency",
                    str(concurrency),
                    "--without-gossip",
                    "--without-mingle",
                    "-Q",
                    settings.CELERY_TASK_DEFAULT_QUEUE,
                    "-l",
                    "info",
                ],
            ),
        ]
        if not no_beat:
            schedule = run_dir() / "celerybeat-schedule"
            children.append(
                Child("Celery beat", [*celery, "beat", "-l", "info", "--schedule", str(schedule)])
            )
        return children

    def stop_children(self, children: list[Child]) -> None:
        running = [c.process for c in children if c.process and c.process.poll() is None]
        for process in running:
            try:
                process.terminate()
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def print_urls(self, host: str, port: int, *, no_beat: bool) -> None:
        base = f"http://{display_host(host)}:{port}"
        parts = "web server + worker" + ("" if no_beat else " + beat")
        self.stdout.write(self.style.SUCCESS(f"✓ TeckoChecker is running ({parts})"))
        self.stdout.write(f"  Web page:  {base}/web")
        self.stdout.write(f"  Admin:     {base}/admin")
        self.stdout.write(f"  API docs:  {base}/docs")
        self.stdout.write("  Log in with the admin user created by `python manage.py init`.")
