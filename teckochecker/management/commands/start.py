"""`manage.py start`: the web server, the Celery workers and beat, supervised together.

This command prepares (settings load, migrations, schedules) and decides what to
run; then it replaces itself with the supervisor (`teckochecker/supervisor.py`), a small process
without Django that starts the children, copies their output to `data/logs/`, restarts one that
dies now and then and stops everything if one keeps dying. The pid stays the same, so the pid
file and `manage.py stop` do not care which of the two is running. `--daemon` runs the same
thing detached.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import CommandError
from django.db import connections
from django.db.migrations.executor import MigrationExecutor

from teckochecker.cli import TeckoCommand
from teckochecker.processes import pid_alive
from teckochecker.supervisor import STARTUP_TIMEOUT_SECONDS, STOP_GRACE_SECONDS, Plan, http_answers

__all__ = ["STOP_GRACE_SECONDS", "pid_alive", "pid_file", "running_pid"]


def run_dir() -> Path:
    path = Path(settings.DATA_DIR) / "run"
    path.mkdir(parents=True, exist_ok=True)
    return path


def logs_dir() -> Path:
    path = Path(settings.DATA_DIR) / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def pid_file() -> Path:
    return run_dir() / "teckochecker.pid"


def log_file() -> Path:
    """The console of a `--daemon` supervisor (its status lines, warnings and errors)."""
    return logs_dir() / "teckochecker.log"


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


def wait_for_http(host: str, port: int, timeout: float, alive=lambda: True) -> bool:
    """Wait until the web server answers HTTP (any status: the app is loaded), not just until
    its port accepts connections, which gunicorn does before its worker has imported Django."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        if http_answers(health_url(host, port)):
            return True
        time.sleep(0.3)
    return False


def display_host(host: str) -> str:
    """The host part of a URL that reaches a server listening on `host`."""
    if host in {"", "0.0.0.0", "::"}:  # noqa: S104 (not a bind: the address to connect to)
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def health_url(host: str, port: int) -> str:
    return f"http://{display_host(host)}:{port}/api/health"


# --- the children's command lines (also used by the benchmark) ----------------------------------
def celery_argv() -> list[str]:
    return [*executable("celery"), "-A", "teckochecker"]


def web_argv(*, host: str, port: int) -> list[str]:
    return [
        *executable("gunicorn"),
        "teckochecker.wsgi:application",
        "--bind",
        f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        # One process with threads keeps the web server's memory small; the threads are set in
        # gunicorn_conf (the live streams' share and the rest of the API's).
        "--config",
        "python:teckochecker.gunicorn_conf",
        "--workers",
        "1",
        "--graceful-timeout",
        str(STOP_GRACE_SECONDS - 5),
        # Nothing here uses gunicorn's control socket; without it two installations on one
        # machine do not share ~/.gunicorn/gunicorn.ctl.
        "--no-control-socket",
    ]


def polling_queues() -> str:
    """The polling worker's `-Q`: webhook confirmations (which the worker consumes on a channel
    of their own, `teckochecker.celery.FastLaneConsumer`), then the default queue."""
    return f"{settings.WEBHOOK_QUEUE},{settings.CELERY_TASK_DEFAULT_QUEUE}"


def worker_argv(*, concurrency: int, beat: bool = False) -> list[str]:
    """The polling worker; with `beat`, beat runs as a thread inside it (one process fewer;
    see `teckochecker.celery.ThreadedBeat`)."""
    argv = [
        *celery_argv(),
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        str(concurrency),
        "--without-gossip",
        "--without-mingle",
        "-Q",
        polling_queues(),
        "-l",
        "info",
    ]
    if beat:
        argv += ["--beat-thread", "--schedule-filename", str(run_dir() / "celerybeat-schedule")]
    return argv


def scripts_worker_argv() -> list[str]:
    """The worker of users' script runs: its own queue and slots, so a slow script never delays
    polling."""
    return [
        *celery_argv(),
        "worker",
        "--pool",
        "threads",
        "--concurrency",
        str(settings.SCRIPTS_CONCURRENCY),
        "--without-gossip",
        "--without-mingle",
        "-Q",
        settings.SCRIPTS_QUEUE,
        "-n",
        "scripts@%h",
        "-l",
        "info",
    ]


def beat_argv() -> list[str]:
    """Beat as a process of its own (the benchmark and compose run it so)."""
    schedule = run_dir() / "celerybeat-schedule"
    return [*celery_argv(), "beat", "-l", "info", "--schedule", str(schedule)]


def root_notice() -> str | None:
    """One line for a service started as root, instead of Celery's warning banner."""
    if os.geteuid() != 0:
        return None
    return (
        "⚠ Running as root: the web server, the workers and every dependency they load can change "
        "anything on this machine. Start TeckoChecker as an ordinary user (or use the container, "
        "which runs as the user teckochecker)."
    )


class Command(TeckoCommand):
    help = (
        "Run the web server, the Celery workers (polling and scripts) and Celery beat together; "
        "Ctrl-C stops all of them. Their logs are in DATA_DIR/logs. --daemon runs them in the "
        "background (stop with `python manage.py stop`)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--daemon", action="store_true", help="Detach; log to DATA_DIR/logs/teckochecker.log."
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
        parser.add_argument(
            "--verbose",
            action="store_true",
            help="Show every line the processes write (banners, INFO logs), not only warnings and errors.",
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
        self, *, host: str, port: int, no_beat: bool, concurrency: int, max_restarts: int, verbose: bool, **_
    ) -> None:
        import subprocess

        argv = [sys.executable, str(settings.BASE_DIR / "manage.py"), "start"]
        argv += ["--host", host, "--port", str(port), "--concurrency", str(concurrency)]
        argv += ["--max-restarts", str(max_restarts)]
        argv += ["--no-beat"] if no_beat else []
        argv += ["--verbose"] if verbose else []
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
        started = wait_for_http(host, port, STARTUP_TIMEOUT_SECONDS, alive=lambda: process.poll() is None)
        if not started:
            if process.poll() is None:
                process.terminate()
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise CommandError("\n".join([f"TeckoChecker did not start; see {log}. Its last lines:", *tail]))
        for line in self.ready_lines(host, port, no_beat=no_beat):
            self.stdout.write(line)
        self.stdout.write(f"  Running in the background (pid {process.pid}); log: {log}")
        self.stdout.write("  Stop it with `python manage.py stop`.")

    # --- foreground: prepare, then become the supervisor --------------------------------------
    def supervise(self, **options) -> None:
        """Prepare, write the plan, and replace this process with the supervisor (same pid)."""
        self.prepare_database()
        connections.close_all()  # the children open their own; do not hold SQLite open here
        notice = root_notice()
        if notice:
            self.stderr.write(notice)
        path = run_dir() / "supervisor.json"
        self.plan(**options).save(path)
        sys.stdout.flush()
        sys.stderr.flush()
        supervisor = Path(__file__).resolve().parents[2] / "supervisor.py"
        # -P: do not put teckochecker/ on sys.path (its celery.py would shadow Celery's).
        os.execv(sys.executable, [sys.executable, "-P", str(supervisor), str(path)])  # noqa: S606

    def plan(
        self, *, host: str, port: int, no_beat: bool, concurrency: int, max_restarts: int, verbose: bool, **_
    ) -> Plan:
        logs = logs_dir()
        children = [
            ("web server", web_argv(host=host, port=port), "web.log"),
            (
                "Celery worker",
                worker_argv(concurrency=concurrency, beat=not no_beat),
                "worker.log",
            ),
            ("scripts worker", scripts_worker_argv(), "scripts-worker.log"),
        ]
        level = os.environ.get("LOG_LEVEL", "").upper()
        return Plan(
            children=[{"name": name, "argv": argv, "log": str(logs / log)} for name, argv, log in children],
            cwd=str(settings.BASE_DIR),
            pid_file=str(pid_file()),
            health_url=health_url(host, port),
            ready_lines=[
                *self.ready_lines(host, port, no_beat=no_beat),
                f"  Logs:      {logs}",
                "  Press Ctrl-C to stop.",
            ],
            max_restarts=max_restarts,
            verbose=verbose,
            # LOG_LEVEL set on purpose (INFO, DEBUG) brings those lines to the console too.
            console_level=level if level in {"DEBUG", "INFO"} else "WARNING",
            env={
                "PYTHONUNBUFFERED": "1",
                "TECKOCHECKER_SUPERVISED": "1",
                # `celery --quiet`: no ASCII banner and configuration dump (what matters is logged).
                **({} if verbose else {"CELERY_QUIET": "1"}),
            },
        )

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

    def ready_lines(self, host: str, port: int, *, no_beat: bool) -> list[str]:
        base = f"http://{display_host(host)}:{port}"
        parts = "web server + worker" + ("" if no_beat else " + beat") + " + scripts worker"
        return [
            self.style.SUCCESS(f"✓ TeckoChecker is running ({parts})"),
            f"  Web page:  {base}/web",
            f"  Admin:     {base}/admin",
            f"  API docs:  {base}/docs",
            "  Log in with the admin user created by `python manage.py init`.",
        ]
