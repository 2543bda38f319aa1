"""The output buffer and the meaning of a process's end, without starting processes (the real
processes are in test_sandbox.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from scripts.sandbox import RunSpec
from scripts.supervise import Output, classify


def test_output_keeps_everything_under_the_cap():
    seen = []
    out = Output(1000, seen.append)
    for chunk in (b"one\n", b"two\n"):
        out.add(chunk)
    assert out.finish() == "one\ntwo\n" and not out.truncated
    assert "".join(seen) == "one\ntwo\n"


def test_output_keeps_the_head_and_the_tail_with_a_mark_between():
    seen = []
    out = Output(4096, seen.append)  # a quarter (1024 bytes) is kept for the tail
    for i in range(1000):
        out.add(f"{i:04d}\n".encode())
    text = out.finish()
    assert out.truncated and out.total == 5000
    assert text.startswith("0000\n0001\n")
    assert text.endswith("0998\n0999\n")
    assert "[output truncated: 904 bytes in the middle were not kept; a run keeps 4,096 bytes]" in text
    assert len(text) == 4096 + len(out.mark())
    assert "".join(seen) == text  # the live stream ends with the same text


def test_output_never_splits_a_character_in_the_live_stream():
    seen = []
    out = Output(1000, seen.append)
    data = "žluťoučký kůň\n".encode()
    for i in range(len(data)):
        out.add(data[i : i + 1])
    out.finish()
    assert "".join(seen) == "žluťoučký kůň\n"
    assert all("\ufffd" not in piece for piece in seen)


def test_output_is_text_a_database_can_store():
    seen = []
    out = Output(1000, seen.append)
    out.add(b"a\x00b\xff\n")
    assert out.finish() == "a\ufffdb\ufffd\n" == "".join(seen)


@pytest.fixture
def spec():
    return RunSpec(
        code="",
        env_dir=None,
        python_path="/usr/bin/python3",
        workdir=Path("/tmp"),
        env={},
        network=False,
        timeout_seconds=5,
        memory_mb=100,
        cpu_seconds=2,
        output_max_bytes=10_000,
        max_processes=8,
        file_size_mb=1,
    )


def _exited(code: int) -> int:
    return code << 8


def _signalled(sig: int) -> int:
    return sig


def _classify(spec, status, *, output=b"", stopped=None, exact=True, peak_kb=1000, cpu=0.1, cancelled=False):
    out = Output(10_000, None)
    out.add(output)
    return classify(
        spec,
        stopped=stopped,
        status=status,
        exact=exact,
        sandboxed=True,
        output=out,
        peak_kb=peak_kb,
        cpu=cpu,
        cancelled_after=lambda: cancelled,
    )


@pytest.mark.parametrize(
    ("status", "kwargs", "expected"),
    [
        (_exited(0), {}, ("succeeded", 0, "Exited with code 0.")),
        (_exited(3), {}, ("failed", 3, "Exited with code 3.")),
        (
            _signalled(signal.SIGKILL),
            {"stopped": "timed_out"},
            ("timed_out", 137, "Timed out after 5 s; the run was stopped."),
        ),
        (
            _signalled(signal.SIGKILL),
            {"stopped": "cancelled"},
            ("cancelled", 137, "Cancelled; the run was stopped."),
        ),
        (_signalled(signal.SIGXCPU), {}, ("killed", 152, "Killed: CPU time limit of 2 s reached.")),
        (_signalled(signal.SIGKILL), {"cpu": 3.0}, ("killed", 137, "Killed: CPU time limit of 2 s reached.")),
        (
            _exited(1),
            {"output": b"Traceback...\nMemoryError\n"},
            ("killed", 1, "Killed: memory limit of 100 MB reached."),
        ),
        (
            _signalled(signal.SIGSEGV),
            {"peak_kb": 95_000},
            ("killed", 139, "Killed: memory limit of 100 MB reached."),
        ),
        (
            _exited(1),
            {"output": b"    os.fork()\nBlockingIOError: [Errno 11] Resource temporarily unavailable\n"},
            ("killed", 1, "Killed: process limit of 8 processes reached."),
        ),
        (
            _exited(1),
            {"output": b"RuntimeError: can't start new thread\n"},
            ("killed", 1, "Killed: process limit of 8 processes reached."),
        ),
        (
            _exited(1),
            {"output": b"OSError: [Errno 27] File too large\n"},
            ("killed", 1, "Killed: file size limit of 1 MB reached."),
        ),
        (
            _exited(1),
            {"output": b"bwrap: Can't find source path /x: No such file\n", "exact": False},
            ("failed", None, "The sandbox could not start: bwrap: Can't find source path /x: No such file"),
        ),
        (_signalled(signal.SIGTERM), {}, ("killed", 143, "Killed by SIGTERM.")),
        (
            _signalled(signal.SIGKILL),
            {"cancelled": True},
            ("cancelled", 137, "Cancelled; the run was stopped."),
        ),
        # Without the bootstrap's report only bwrap's exit code is known: 128+N is signal N.
        (
            _exited(128 + signal.SIGXCPU),
            {"exact": False},
            ("killed", 152, "Killed: CPU time limit of 2 s reached."),
        ),
        # With the report, a script's own exit code 152 is just that.
        (_exited(152), {}, ("failed", 152, "Exited with code 152.")),
    ],
)
def test_classify(spec, status, kwargs, expected):
    assert _classify(spec, status, **kwargs) == expected


def test_the_status_helpers_mean_what_the_kernel_says():
    assert os.WIFEXITED(_exited(3)) and os.WEXITSTATUS(_exited(3)) == 3
    assert os.WIFSIGNALED(_signalled(9)) and os.WTERMSIG(_signalled(9)) == 9
