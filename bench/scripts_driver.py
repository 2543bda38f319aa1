"""The inside of `manage.py bench --scripts N`: `python -m bench.scripts_driver <workdir>`.

Started by bench/run.py with an environment that points at a throw-away database and broker.
It starts a polling worker (it runs beat's scheduled triggers), beat and the scripts worker with
`manage.py start`'s command lines, creates N scripts on a one-minute cron, and measures:

- the overhead of one run through the scripts worker, alone on an idle stack: *dequeue -> first
  line* (the run claimed by the worker, `started_at`, to the script's first line, which prints
  `time.time()`) and *exit -> recorded* (the script's last line, also `time.time()`, to the run
  being visible as finished in the database, polled every 5 ms);
- every minute the cron fires, for each script: *queued lag* (the minute to the run being
  queued, i.e. beat + the trigger task) and *start lag* (the minute to the run starting in a
  scripts slot); and whether every script ran every minute (no run lost or skipped).

Writes workdir/scripts-report.json.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teckochecker.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from bench.procs import Child, wait_until  # noqa: E402

CODE = "import time\nprint(time.time(), flush=True)\nprint(time.time(), flush=True)\n"
STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"bench [{time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))], 3)


def summary(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": round(max(values), 3) if values else None,
    }


def _fresh(qs):
    connection.close()
    return qs


def overhead(script, samples: int) -> dict:
    """Runs of one script, one at a time, on an otherwise idle stack."""
    from scripts.models import FINISHED_RUN_STATES, ScriptRun
    from scripts.services import script_run_now

    dequeue_to_first, exit_to_recorded = [], []
    for _ in range(samples):
        run = script_run_now(script=script)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state, output, started = ScriptRun.objects.filter(pk=run.pk).values_list(
                "state", "output", "started_at"
            )[0]
            if state in FINISHED_RUN_STATES:
                seen = time.time()
                break
            time.sleep(0.005)
        else:
            raise RuntimeError(f"run {run.pk} did not finish")
        first, last = (float(x) for x in output.split())
        dequeue_to_first.append(first - started.timestamp())
        exit_to_recorded.append(seen - last)
    return {
        "dequeue_to_first_line_s": summary(dequeue_to_first),
        "exit_to_recorded_s": summary(exit_to_recorded),
    }


def cron_minutes(script_ids: list[int], minutes: int) -> dict:
    """Let the cron fire `minutes` times; lag per run from its minute, and lost runs."""
    from scripts.models import RunState, RunTrigger, ScriptRun

    now = datetime.now(UTC)
    first = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    last = first + timedelta(minutes=minutes - 1)
    end = last + timedelta(seconds=50)
    log(f"cron: waiting for the minutes {first:%H:%M} to {last:%H:%M} (until {end:%H:%M:%S})")
    while datetime.now(UTC) < end:
        time.sleep(1)
    runs = list(
        _fresh(ScriptRun.objects)
        .filter(trigger=RunTrigger.SCHEDULE, queued_at__gte=first - timedelta(seconds=1))
        .values("script_id", "state", "queued_at", "started_at", "finished_at")
    )
    queued_lag, start_lag, by_minute = [], [], {}
    for run in runs:
        minute = run["queued_at"].replace(second=0, microsecond=0)
        if minute > last:
            continue
        by_minute.setdefault(minute, set()).add(run["script_id"])
        queued_lag.append((run["queued_at"] - minute).total_seconds())
        if run["started_at"]:
            start_lag.append((run["started_at"] - minute).total_seconds())
    expected = {first + timedelta(minutes=i) for i in range(minutes)}
    missing = sum(len(set(script_ids) - by_minute.get(m, set())) for m in expected)
    return {
        "minutes": minutes,
        "runs": len(queued_lag),
        "expected": minutes * len(script_ids),
        "missing": missing,
        "not_succeeded": sum(1 for r in runs if r["state"] != RunState.SUCCEEDED),
        "queued_lag_s": summary(queued_lag),
        "start_lag_s": summary(start_lag),
    }


def main(workdir: Path) -> None:
    from scripts.models import EnvState, Script
    from scripts.services import script_create, script_update
    from teckochecker.management.commands import start

    config = json.loads((workdir / "config.json").read_text())
    call_command("migrate", interactive=False, verbosity=0)
    env = dict(os.environ)
    children = [
        Child("worker", [*start.worker_argv(concurrency=config["concurrency"]), "-n", "bench-w@%h"], workdir / "worker.log"),
        Child("beat", start.beat_argv(), workdir / "beat.log"),
        Child("scripts worker", start.scripts_worker_argv(), workdir / "scripts-worker.log"),
    ]  # fmt: skip
    try:
        for child in children:
            child.start(env=env, cwd=settings.BASE_DIR)
        probe = script_create(name="bench overhead", code=CODE)
        # Disabled until the overhead is measured, so the cron does not compete with it.
        scripts = [
            script_create(
                name=f"bench cron {i}",
                code=CODE,
                schedule={"type": "cron", "cron": "* * * * *"},
                enabled=False,
            )
            for i in range(config["scripts"])
        ]
        log(f"{len(scripts)} scripts on a one-minute cron; building their environments")
        wait_until(
            lambda: not _fresh(Script.objects).exclude(env_state=EnvState.READY).exists(),
            timeout=60 + 5 * len(scripts),
            interval=1,
            what="every environment",
        )
        failed = Script.objects.filter(env_state=EnvState.FAILED).count()
        if failed:
            raise RuntimeError(f"{failed} environment(s) failed to build")
        log("environments ready; measuring one run's overhead")
        report = {"config": config, "overhead": overhead(probe, config["samples"])}
        log(f"overhead: {report['overhead']}")
        for script in scripts:
            script_update(script=script, enabled=True)
        report["cron"] = cron_minutes([s.pk for s in scripts], config["minutes"])
        log(f"cron: {report['cron']}")
        report["processes"] = {
            child.role: [f.__dict__ for f in child.figures()] for child in children if child.alive()
        }
        (workdir / "scripts-report.json").write_text(json.dumps(report, indent=2, default=str))
    finally:
        for child in children:
            child.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
