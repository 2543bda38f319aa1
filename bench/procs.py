"""The benchmark's child processes and what /proc says about them (memory, CPU time)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_KB = 1024


def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces; fields restart after ")".
    return raw.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of the process plus those of its waited-for children (cutime, cstime)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    # After ")": state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


@dataclass
class ProcessFigures:
    role: str
    pid: int
    idle_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    cpu_seconds: float | None = None


@dataclass
class Child:
    """One launched process. `figures()` covers it and its live children (gunicorn's worker)."""

    role: str
    argv: list[str]
    log_path: Path
    process: subprocess.Popen | None = None
    idle_rss: dict[int, float] = field(default_factory=dict)

    def start(self, *, env: dict[str, str], cwd: Path) -> Child:
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            self.argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._log = log
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tree(self) -> list[tuple[str, int]]:
        """(role, pid) of the process and each direct child, e.g. gunicorn master and worker."""
        kids = children_of(self.pid)
        if not kids:
            return [(self.role, self.pid)]
        return [(f"{self.role} (parent)", self.pid)] + [
            (self.role if len(kids) == 1 else f"{self.role} #{i + 1}", kid) for i, kid in enumerate(kids)
        ]

    def mark_idle(self) -> None:
        for _role, pid in self.tree():
            rss = _status_kb(pid, "VmRSS")
            if rss is not None:
                self.idle_rss[pid] = rss / PAGE_KB

    def figures(self) -> list[ProcessFigures]:
        out = []
        for role, pid in self.tree():
            hwm = _status_kb(pid, "VmHWM")
            out.append(
                ProcessFigures(
                    role=role,
                    pid=pid,
                    idle_rss_mb=_round(self.idle_rss.get(pid)),
                    peak_rss_mb=_round(hwm / PAGE_KB if hwm is not None else None),
                    cpu_seconds=_round(cpu_seconds(pid)),
                )
            )
        return out

    def terminate(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)

    def stop(self, timeout: float = 20) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._log.close()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def wait_until(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
