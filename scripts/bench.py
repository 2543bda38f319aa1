"""The overhead of one sandboxed run, measured around `scripts.sandbox.run` (no database, no queue).

- spawn -> first line: from starting bwrap to the script's first output line read by us
  (bwrap's namespaces and mounts, the bootstrap interpreter, the script's interpreter start);
- exit -> result: from the script's last statement (it prints time.time()) to `run()`
  returning its RunResult (interpreter shutdown, bwrap's teardown, reaping, classification);
- the same with SCRIPTS_SANDBOX=off, and a bare `python -c pass` for comparison.

`python -m scripts.bench [runs]` prints the figures; `overhead()` returns them for `manage.py
bench`. The dequeue -> first line and exit -> recorded figures of a whole run belong to the
scripts worker's benchmark, which adds its own database work to these.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scripts.environments import python_resolve, pythons_available
from scripts.sandbox import RunSpec, run

CODE = "import time\nprint(time.time(), flush=True)"


def _spec(workdir: Path, python_path: str) -> RunSpec:
    return RunSpec(
        code=CODE,
        env_dir=None,
        python_path=python_path,
        workdir=workdir,
        env={"TECKOCHECKER_RUN_ID": "bench"},
        network=False,
        timeout_seconds=60,
        memory_mb=256,
        cpu_seconds=30,
        output_max_bytes=65536,
    )


def _summary(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {"p50_ms": round(statistics.median(ms), 1), "p95_ms": round(p95, 1), "max_ms": round(ms[-1], 1)}


def _measure(runs: int, *, sandbox: bool, python_path: str, workdir: Path) -> dict[str, dict[str, float]]:
    first, after_exit = [], []
    for _ in range(runs):
        result = run(_spec(workdir, python_path), sandbox=sandbox)
        returned = time.time()
        if result.state != "succeeded":
            raise RuntimeError(f"bench run {result.state}: {result.message}\n{result.output[-500:]}")
        first.append(result.facts["spawn_to_first_output"])
        after_exit.append(returned - float(result.output.split()[0]))
    return {"spawn_to_first_line": _summary(first), "exit_to_result": _summary(after_exit)}


def _bare(runs: int, python_path: str) -> dict[str, float]:
    times = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run([python_path, "-c", "pass"], check=True)
        times.append(time.monotonic() - started)
    return _summary(times)


def overhead(runs: int = 20, *, python_version: str = "") -> dict[str, object]:
    """Figures of `runs` runs of a one-line script, with and without the sandbox."""
    python = python_resolve(python_version)
    with tempfile.TemporaryDirectory(prefix="teckochecker-bench-") as tmp:
        Path(tmp).chmod(0o755)  # noqa: S103 - the unsandboxed run is nobody and must reach it
        workdir = Path(tmp) / "work"
        run(_spec(workdir, python.path), sandbox=True)  # warm the page cache
        report: dict[str, object] = {"python": python.version, "runs": runs}
        report["sandbox"] = _measure(runs, sandbox=True, python_path=python.path, workdir=workdir)
        report["bare_interpreter_start"] = _bare(runs, python.path)
        # Unsandboxed, a root service runs the script as an ordinary uid: it needs an interpreter
        # every user can reach (a pyenv build under /root is not).
        reachable = [p for p in pythons_available() if not p.path.startswith("/root/")]
        off_python = reachable[0].path if reachable else python.path
        report["no_sandbox_python"] = off_python
        try:
            report["no_sandbox"] = _measure(runs, sandbox=False, python_path=off_python, workdir=workdir)
            report["no_sandbox_bare_interpreter_start"] = _bare(runs, off_python)
        except RuntimeError as exc:
            report["no_sandbox"] = str(exc).splitlines()[0]
    return report


def main(argv: list[str]) -> None:
    runs = int(argv[1]) if len(argv) > 1 else 20
    report = overhead(runs)
    print(
        f"{report['runs']} runs each; sandbox: Python {report['python']}, off: {report['no_sandbox_python']}"
    )

    def line(label: str, metric: str, summary: dict[str, float]) -> None:
        print(f"{label:<11} {metric:<20} " + "  ".join(f"{k} {v:>7}" for k, v in summary.items()))

    for metric, summary in report["sandbox"].items():
        line("sandbox", metric, summary)
    line("sandbox", "python -c pass", report["bare_interpreter_start"])
    if isinstance(report["no_sandbox"], str):
        print(f"{'off':<11} {report['no_sandbox']}")
    else:
        for metric, summary in report["no_sandbox"].items():
            line("off", metric, summary)
        line("off", "python -c pass", report["no_sandbox_bare_interpreter_start"])


if __name__ == "__main__":
    main(sys.argv)
