"""The supervisor behind `manage.py start`: it starts, watches and stops the service's processes.

`manage.py start` prepares (settings, migrations, schedules) and then replaces itself with this
module (`python -P teckochecker/supervisor.py <plan.json>`), so the process that stays up for
days imports only the standard library: no Django, no Celery (about 12 MB instead of 90 MB).
For that reason this file imports nothing from the project, and runs as a script as well as a
module (tests import it as `teckochecker.supervisor`).

Each child's output (stdout and stderr) goes through a pipe to its own log file under
`data/logs/`, rotated by size. The console shows only our status lines and the children's
warnings and errors (with the lines that belong to them, e.g. a traceback); `--verbose` shows
everything.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

STOP_GRACE_SECONDS = 20
RESTART_WINDOW_SECONDS = 600
STARTUP_TIMEOUT_SECONDS = 60
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5
TAIL_LINES = 8
MAX_LINE_BYTES = 65536

LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}
# Our log format ("2026-01-01 10:00:00,123 WARNING name: ..."), gunicorn's
# ("[2026-01-01 10:00:00 +0000] [42] [ERROR] ..."), Python's warnings ("file.py:12: XWarning: ...")
# and an uncaught exception's traceback.
_RECORD = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[,.]\d+ (?P<level>[A-Z]+) ")
_GUNICORN = re.compile(r"^\[\d{4}-\d\d-\d\d [^\]]*\] \[\d+\] \[(?P<level>[A-Z]+)\] ")
_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ")


def line_level(line: str, previous: int) -> int:
    """The level of one output line: its own if it starts a record, else (a traceback's or a
    warning's continuation, a banner) the level of the record it follows."""
    match = _RECORD.match(line) or _GUNICORN.match(line)
    if match:
        return LEVELS.get(match.group("level"), LEVELS["INFO"])
    if _WARNING.match(line):
        return LEVELS["WARNING"]
    if line.startswith("Traceback (most recent call last):"):
        return LEVELS["ERROR"]
    return previous


class RotatingLog:
    """An append-only log file that is renamed to .1 (.1 to .2, ...) when it reaches max_bytes."""

    def __init__(self, path: Path, max_bytes: int = LOG_MAX_BYTES, backups: int = LOG_BACKUPS) -> None:
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "ab")  # noqa: SIM115 (closed in close())

    def write(self, data: bytes) -> None:
        if self.file.tell() + len(data) > self.max_bytes and self.file.tell() > 0:
            self.rotate()
        self.file.write(data)
        self.file.flush()

    def rotate(self) -> None:
        self.file.close()
        for n in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        if self.backups:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)
        self.file = open(self.path, "ab")  # noqa: SIM115

    def tail(self, lines: int = TAIL_LINES) -> list[str]:
        try:
            text = self.path.read_bytes()[-16384:].decode(errors="replace")
        except OSError:
            return []
        return text.splitlines()[-lines:]

    def close(self) -> None:
        self.file.close()


@dataclass
class Child:
    """One supervised process: what to run, where its log goes, and its current process."""

    name: str
    argv: list[str]
    log: str
    process: subprocess.Popen | None = None
    restarts: list[float] = field(default_factory=list)
    # Lines before the first record (a banner) count as details; a traceback still shows.
    level: int = LEVELS["DEBUG"]
    pending: bytes = b""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Plan:
    """Everything `manage.py start` decided; the supervisor reads it from a JSON file."""

    children: list[dict]
    cwd: str
    pid_file: str
    health_url: str
    ready_lines: list[str]
    max_restarts: int = 5
    verbose: bool = False
    console_level: str = "WARNING"
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Plan:
        return cls(**json.loads(Path(path).read_text()))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=1))


def _die_with_parent() -> None:
    """Children get SIGTERM if the supervisor is killed outright (Linux), instead of lingering."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def http_answers(url: str, timeout: float = 2.0) -> bool:
    """True when an HTTP server answers `url` with any status line (the app is loaded: gunicorn
    accepts connections before its worker has imported Django, but answers only after)."""
    match = re.match(r"http://(\[[^\]]+\]|[^/:]+):(\d+)(/.*)$", url)
    if not match:
        raise ValueError(f"not an http://host:port/path URL: {url}")
    host, port, path = match.group(1).strip("[]"), int(match.group(2)), match.group(3)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            return sock.recv(12).startswith(b"HTTP/")
    except OSError:
        return False


class Supervisor:
    """Start the children, copy their output to logs (and the console), restart a child that
    dies now and then, stop them all when one keeps dying or on SIGINT/SIGTERM/SIGHUP.

    Each step is a method so that tests can drive it: `start_all`, `pump`, `check_children`,
    `stop_all`; `run` is the loop that strings them together."""

    def __init__(self, plan: Plan, *, out=None, err=None) -> None:
        self.plan = plan
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.children = [Child(**spec) for spec in plan.children]
        self.logs = {c.name: RotatingLog(Path(c.log)) for c in self.children}
        self.selector = selectors.DefaultSelector()
        self.stop_requested: list[int] = []
        self.exit_code = 0
        self.threshold = 0 if plan.verbose else LEVELS.get(plan.console_level, LEVELS["WARNING"])

    # --- output -----------------------------------------------------------------------------
    def say(self, line: str, *, error: bool = False) -> None:
        stream = self.err if error else self.out
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):  # the terminal went away: the logs still have everything
            pass

    def start_child(self, child: Child) -> None:
        env = {**os.environ, **self.plan.env}
        child.process = subprocess.Popen(
            child.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Own process group: a terminal Ctrl-C reaches only this supervisor, which then sends
            # each child exactly one SIGTERM (a second SIGINT would make the Celery worker abandon
            # running tasks).
            process_group=0,
            preexec_fn=_die_with_parent,
            cwd=self.plan.cwd,
            env=env,
        )
        child.level, child.pending = LEVELS["DEBUG"], b""
        os.set_blocking(child.process.stdout.fileno(), False)
        self.selector.register(child.process.stdout, selectors.EVENT_READ, child)

    def start_all(self) -> None:
        for child in self.children:
            self.start_child(child)

    def pump(self, timeout: float) -> None:
        """Copy what the children wrote within `timeout` seconds to their logs (and the
        console, by level)."""
        for key, _events in self.selector.select(timeout):
            child: Child = key.data
            try:
                data = os.read(key.fd, 65536)
            except (BlockingIOError, InterruptedError):
                continue
            if not data:  # the child closed its output (it exited)
                self.selector.unregister(key.fileobj)
                key.fileobj.close()
                self.flush_partial(child)
                continue
            self.take(child, data)

    def take(self, child: Child, data: bytes) -> None:
        """Log what a child wrote, and show its complete lines on the console by level."""
        self.logs[child.name].write(data)
        lines = (child.pending + data).split(b"\n")
        child.pending = lines.pop()
        if len(child.pending) > MAX_LINE_BYTES:  # no newline for this long: show it as is
            lines.append(child.pending)
            child.pending = b""
        for raw in lines:
            self.echo(child, raw.decode(errors="replace"))

    def flush_partial(self, child: Child) -> None:
        if child.pending:
            self.echo(child, child.pending.decode(errors="replace"))
            child.pending = b""

    def echo(self, child: Child, line: str) -> None:
        child.level = line_level(line, child.level)
        if child.level >= self.threshold and line.strip():
            self.say(f"[{child.name}] {line}", error=child.level >= LEVELS["WARNING"])

    def drain(self, child: Child) -> None:
        """Read what a dead child left in its pipe, so that its last words (often why it died)
        reach the log and, by level, the console."""
        stream = child.process.stdout if child.process else None
        if stream is None or stream.closed:
            return
        while True:
            try:
                data = os.read(stream.fileno(), 65536)
            except (BlockingIOError, InterruptedError, OSError):
                break
            if not data:
                break
            self.take(child, data)
        try:
            self.selector.unregister(stream)
        except (KeyError, ValueError):
            pass
        stream.close()
        self.flush_partial(child)

    # --- watching ---------------------------------------------------------------------------
    def restart_allowed(self, child: Child, now: float) -> bool:
        """True (and the restart counted) if the child has restarted fewer than max_restarts
        times within the window."""
        recent = [t for t in child.restarts if now - t < RESTART_WINDOW_SECONDS]
        if len(recent) >= self.plan.max_restarts:
            child.restarts = recent
            return False
        child.restarts = [*recent, now]
        return True

    def check_children(self) -> bool:
        """Restart a child that died now and then (e.g. a worker losing Redis during its
        restart); False when one keeps dying, and everything should stop."""
        for child in self.children:
            if child.alive():
                continue
            code = child.process.returncode if child.process else None
            self.drain(child)
            log = self.logs[child.name]
            if not self.restart_allowed(child, time.monotonic()):
                self.say(f"✗ The {child.name} exited (code {code}); stopping the others.", error=True)
                self.say_tail(child)
                self.exit_code = 1
                return False
            count, limit = len(child.restarts), self.plan.max_restarts
            self.say(
                f"⚠ The {child.name} exited (code {code}); restarting it "
                f"({count}/{limit} in {RESTART_WINDOW_SECONDS // 60} minutes). Log: {log.path}",
                error=True,
            )
            time.sleep(1)
            self.start_child(child)
        return True

    def say_tail(self, child: Child) -> None:
        log = self.logs[child.name]
        tail = log.tail()
        if tail:
            self.say(f"  Its last lines ({log.path}):", error=True)
            for line in tail:
                self.say(f"    {line}", error=True)

    def all_alive(self) -> bool:
        return not self.stop_requested and all(c.alive() for c in self.children)

    def wait_until_serving(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> bool:
        """Pump output until the web server answers, a child dies or a stop is asked for."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.all_alive():
            if http_answers(self.plan.health_url):
                return True
            self.pump(0.3)
        return False

    # --- stopping ---------------------------------------------------------------------------
    def on_signal(self, signum, _frame) -> None:
        if self.stop_requested:  # a second Ctrl-C: no more waiting
            for child in self.children:
                if child.alive():
                    child.process.kill()
        self.stop_requested.append(signum)

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.on_signal)

    def stop_all(self) -> None:
        """SIGTERM to every running child, SIGKILL to any still running after the grace time;
        their last output still reaches the logs."""
        running = [c for c in self.children if c.alive()]
        for child in running:
            try:
                child.process.terminate()
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(c.alive() for c in running) and time.monotonic() < deadline:
            self.pump(0.2)
        for child in running:
            if child.alive():
                child.process.kill()
            child.process.wait()
            self.drain(child)
        for log in self.logs.values():
            log.close()

    # --- the loop ---------------------------------------------------------------------------
    def run(self) -> int:
        """Supervise until stopped; the exit code is 1 if a child kept dying, else 0."""
        self.install_signal_handlers()
        pid_file = Path(self.plan.pid_file)
        pid_file.write_text(f"{os.getpid()}\n")
        try:
            self.start_all()
            if self.wait_until_serving():
                for line in self.plan.ready_lines:
                    self.say(line)
            while not self.stop_requested and self.check_children():
                self.pump(0.5)
        finally:
            self.stop_all()
            if pid_file.exists() and pid_file.read_text().strip() == str(os.getpid()):
                pid_file.unlink(missing_ok=True)
        if not self.exit_code:
            self.say("✓ TeckoChecker stopped")
        return self.exit_code


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: supervisor.py PLAN.json (written by `python manage.py start`)\n")
        return 2
    return Supervisor(Plan.load(Path(argv[0]))).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
