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

from scripts.environments import environment_build, python_resolve, pythons_available
from scripts.sandbox import RunSpec, run

CODE = "import time\nprint(time.time(), flush=True)"


def _spec(workdir: Path, python_path: str, env_dir: Path) -> RunSpec:
    return RunSpec(
        code=CODE,
        env_dir=env_dir,
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


def _measure(
    runs: int, *, sandbox: bool, python_path: str, workdir: Path, env_dir: Path
) -> dict[str, dict[str, float]]:
    first, after_exit = [], []
    for _ in range(runs):
        result = run(_spec(workdir, python_path, env_dir), sandbox=sandbox)
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
    """Figures of `runs` runs of a one-line script in an empty environment (as every real run
    has one), with and without the sandbox, and bare starts of that environment's interpreter."""
    python = python_resolve(python_version)
    # Unsandboxed, a root service runs the script as an ordinary uid: it needs an interpreter
    # every user can reach (a pyenv build under /root is not).
    reachable = [p for p in pythons_available() if not p.path.startswith("/root/")]
    off = reachable[0] if reachable else python
    with tempfile.TemporaryDirectory(prefix="teckochecker-bench-") as tmp:
        Path(tmp).chmod(0o755)  # noqa: S103 - the unsandboxed run is an ordinary uid and must reach it
        workdir = Path(tmp) / "work"
        envs = {}
        for info in {python.path: python, off.path: off}.values():
            env_dir = Path(tmp) / f"env-{info.version}"
            built = environment_build(
                env_dir=env_dir, python=info, requirements=[], cache_dir=Path(tmp) / "cache"
            )
            if not built.ok:
                raise RuntimeError(f"bench environment for Python {info.version}: {built.error}")
            envs[info.path] = env_dir
        run(_spec(workdir, python.path, envs[python.path]), sandbox=True)  # warm the page cache
        report: dict[str, object] = {"python": python.version, "runs": runs, "no_sandbox_python": off.version}
        report["sandbox"] = _measure(
            runs, sandbox=True, python_path=python.path, workdir=workdir, env_dir=envs[python.path]
        )
        report["bare_interpreter_start"] = _bare(runs, str(envs[python.path] / "bin" / "python"))
        try:
            report["no_sandbox"] = _measure(
                runs, sandbox=False, python_path=off.path, workdir=workdir, env_dir=envs[off.path]
            )
            report["no_sandbox_bare_interpreter_start"] = _bare(runs, str(envs[off.path] / "bin" / "python"))
        except RuntimeError as exc:
            report["no_sandbox"] = str(exc).splitlines()[0]
    return report


def main(argv: list[str]) -> None:
    runs = int(argv[1]) if len(argv) > 1 else 20
    report = overhead(runs)
    print(
        f"{report['runs']} runs each, a one-line script in an empty environment; "
        f"sandbox: Python {report['python']}, off: Python {report['no_sandbox_python']}"
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
    from django.conf import settings

    if not settings.configured:  # standalone: only the sandbox's switch is read
        settings.configure(SCRIPTS_SANDBOX=True)
    main(sys.argv)
