"""Watching one started process to its end: its output kept within a cap while everything is
still read, the wall-clock deadline and cancel requests (which kill its process group), and
what its end means (`classify`). Used by `scripts.sandbox`; knows nothing of bwrap."""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import re
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scripts.sandbox import RunSpec

logger = logging.getLogger(__name__)

READ_CHUNK = 65536
TAIL_MAX_BYTES = 64 * 1024
EXIT_DRAIN_SECONDS = 2.0


def _text(text: str) -> str:
    # NUL cannot be stored in a PostgreSQL text column; shown like an undecodable byte.
    return text.replace("\x00", "\ufffd")


def _decode(data: bytes | bytearray) -> str:
    return _text(data.decode("utf-8", "replace"))


class Output:
    """Keeps the head of the output and its last TAIL_MAX_BYTES, up to `cap` bytes in all, and
    counts what falls between them: 100 MB of output costs reading it, not keeping it."""

    def __init__(self, cap: int, on_output: Callable[[str], None] | None):
        self.cap = cap
        self.tail_max = min(TAIL_MAX_BYTES, cap // 4)
        self.head_max = cap - self.tail_max
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0
        self.total = 0
        self.on_output = on_output
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.first_at: float | None = None

    def add(self, data: bytes) -> None:
        if self.first_at is None:
            self.first_at = time.monotonic()
        self.total += len(data)
        room = self.head_max - len(self.head)
        if room > 0:
            kept = data[:room]
            self.head += kept
            data = data[room:]
            if self.on_output is not None:
                text = _text(self.decoder.decode(kept))
                if text:
                    self._tell(text)
        if data:
            self.tail += data
            excess = len(self.tail) - self.tail_max
            if excess > 0:
                self.dropped += excess
                del self.tail[:excess]

    def _tell(self, text: str) -> None:
        # A failing listener (the live view's database write) must not end the run: the output
        # is still kept here and returned; the listener is dropped.
        try:
            self.on_output(text)
        except Exception:
            logger.exception("on_output failed; the rest of this run's output is not streamed")
            self.on_output = None

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def mark(self) -> str:
        return (
            f"\n\n[output truncated: {self.dropped:,} bytes in the middle were not kept; "
            f"a run keeps {self.cap:,} bytes]\n\n"
        )

    def finish(self) -> str:
        """The kept output as text; tells on_output the rest (the mark and the tail)."""
        rest = _text(self.decoder.decode(b"", final=True))
        if self.truncated:
            rest += self.mark() + _decode(self.tail)
        else:
            rest += _decode(self.tail)
        if rest and self.on_output is not None:
            self._tell(rest)
        head = _decode(self.head)
        if self.truncated:
            return head + self.mark() + _decode(self.tail)
        return head + _decode(self.tail)

    def tail_text(self, size: int = 4096) -> str:
        whole = bytes(self.head[-size:] if not self.tail else (self.head + self.tail)[-size:])
        return whole.decode("utf-8", "replace")


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def classify(
    spec: RunSpec,
    *,
    stopped: str | None,
    status: int,
    exact: bool,
    sandboxed: bool,
    output: Output,
    peak_kb: int,
    cpu: float,
    cancelled_after: Callable[[], bool],
) -> tuple[str, int | None, str]:
    """(state, exit code, message) of a finished run."""
    if os.WIFSIGNALED(status):
        sig: int | None = os.WTERMSIG(status)
        code = 128 + sig
    else:
        code = os.WEXITSTATUS(status)
        # Without the bootstrap's report, bwrap's exit code 128+N stands for signal N.
        sig = code - 128 if not exact and sandboxed and 128 < code < 128 + 65 else None
    if stopped == "timed_out":
        return "timed_out", code, f"Timed out after {spec.timeout_seconds:g} s; the run was stopped."
    if stopped == "cancelled":
        return "cancelled", code, "Cancelled; the run was stopped."
    tail = output.tail_text()
    if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= spec.cpu_seconds):
        return "killed", code, f"Killed: CPU time limit of {spec.cpu_seconds} s reached."
    if code != 0 and (
        re.search(r"^MemoryError", tail, re.MULTILINE)
        or "Cannot allocate memory" in tail
        or (
            sig in (signal.SIGSEGV, signal.SIGABRT, signal.SIGKILL) and peak_kb >= spec.memory_mb * 1024 * 0.8
        )
    ):
        return "killed", code, f"Killed: memory limit of {spec.memory_mb} MB reached."
    if code != 0 and (
        ("BlockingIOError: [Errno 11]" in tail and re.search(r"fork|spawn|Popen", tail))
        or "can't start new thread" in tail
    ):
        return "killed", code, f"Killed: process limit of {spec.max_processes} processes reached."
    if code != 0 and "[Errno 27] File too large" in tail:
        return "killed", code, f"Killed: file size limit of {spec.file_size_mb} MB reached."
    if code == 1 and sandboxed and output.head.startswith(b"bwrap: "):
        line = output.head.split(b"\n", 1)[0].decode("utf-8", "replace")
        return "failed", None, f"The sandbox could not start: {line}"
    if sig is not None:
        if cancelled_after():
            return "cancelled", code, "Cancelled; the run was stopped."
        return "killed", code, f"Killed by {signal_name(sig)}."
    if code == 0:
        return "succeeded", 0, "Exited with code 0."
    return "failed", code, f"Exited with code {code}."


def asks_to_cancel(should_cancel: Callable[[], bool]) -> bool:
    # A failing question (a database hiccup) is not a cancel: asked again next poll.
    try:
        return bool(should_cancel())
    except Exception:
        logger.exception("should_cancel failed; the run goes on")
        return False


@dataclass
class Watched:
    stopped: str | None  # "timed_out", "cancelled" or None when it ended by itself
    status: int  # the wait status of the process
    exited_at: float | None  # monotonic time its main process ended
    reaped_at: float


def watch(
    proc: subprocess.Popen,
    output: Output,
    *,
    deadline: float,
    should_cancel: Callable[[], bool] | None,
    poll_seconds: float,
) -> Watched:
    """Read `proc`'s output into `output` until it has ended and its pipe is drained; kill its
    process group at `deadline` (monotonic) or when should_cancel() says so, and as soon as its
    main process ends (whatever it left behind goes too). Reaps it: sets proc.returncode."""
    pid = proc.pid
    out_fd = proc.stdout.fileno()
    os.set_blocking(out_fd, False)
    pidfd = os.pidfd_open(pid)
    selector = selectors.DefaultSelector()
    selector.register(out_fd, selectors.EVENT_READ, "out")
    selector.register(pidfd, selectors.EVENT_READ, "exit")
    next_cancel_check = time.monotonic()
    stopped: str | None = None
    exited_at: float | None = None
    eof = False
    try:
        while not (eof and exited_at is not None):
            now = time.monotonic()
            if exited_at is None and stopped is None:
                if now >= deadline:
                    stopped = "timed_out"
                    kill_group(pid)
                elif should_cancel is not None and now >= next_cancel_check:
                    next_cancel_check = now + poll_seconds
                    if asks_to_cancel(should_cancel):
                        stopped = "cancelled"
                        kill_group(pid)
            if exited_at is not None and now - exited_at > EXIT_DRAIN_SECONDS:
                break  # something outside our reach still holds the pipe (SCRIPTS_SANDBOX=off)
            wait = poll_seconds if exited_at is None else EXIT_DRAIN_SECONDS
            if exited_at is None and stopped is None:
                wait = max(0.0, min(wait, deadline - now))
            for key, _ in selector.select(wait):
                if key.data == "out":
                    try:
                        data = os.read(out_fd, READ_CHUNK)
                    except BlockingIOError:
                        continue
                    if data:
                        output.add(data)
                    else:
                        eof = True
                        selector.unregister(out_fd)
                elif exited_at is None:
                    # The main process ended (still a zombie, so its pid cannot be reused yet):
                    # end whatever it left behind in its group before reaping it.
                    exited_at = time.monotonic()
                    selector.unregister(pidfd)
                    kill_group(pid)
        _, status = os.waitpid(pid, 0)
    finally:
        selector.close()
        os.close(pidfd)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Watched(stopped=stopped, status=status, exited_at=exited_at, reaped_at=time.monotonic())
