"""Turn what a benchmark run recorded into figures, and print them.

Definitions (docs/BENCHMARKS.md repeats them):
- A batch is *observed* when the fake answers a read of it or shows it on a list page.
- A *check* of a job is the group of observations of its batches made at once (one read per
  pending batch, or the list pages of a sweep), as the fake logged them; its time is the first.
- *Poll lag* of a check = its time minus when it was due = the previous check + the interval.
  The first check is due when the job is created; its lag is reported on its own.
- *Trigger latency* = the Keboola POST's arrival minus the moment the job's last batch turned
  terminal in the fake (or the job's creation, if later). It is split in two at the moment
  TeckoChecker had recorded every batch of the job as finished (the latest `updated_at` of its
  batches): *until recorded* (the read's cadence, the read itself and storing it) and
  *recorded to trigger* (waiting for the action to start, and its own request).
- *Minimum OpenAI requests* of a batch = ceil(lifetime / interval) + 1, lifetime = from the
  batch's first check until it turned terminal: what a poller exactly on schedule would need.
  These are the *batch-checks* the rules ask for; *OpenAI requests per batch-check* = every
  OpenAI request (single reads and list pages) / their sum (1 when every check reads every
  batch on its own, as before the sweeps).
- *List walks*, as the fake counts them: a list page whose `after` is not where an earlier page
  ended starts one. A sweep walks its groups of 100 batches at once, each group's walk starting
  where the one before should end; when its batches lie together in the list those walks join
  up and the fake sees one walk for the sweep, so the count is close to the number of sweeps
  (more when a sweep's batches are spread out, fewer when a sweep happens to start exactly where
  another one's page ended).
"""

from __future__ import annotations

import math
import os
import platform
from collections import defaultdict
from dataclasses import asdict


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0-100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: list[float], points=(50, 95, 99), digits: int = 3) -> dict:
    out: dict = {"count": len(values)}
    for p in points:
        value = percentile(values, p)
        out[f"p{p}"] = None if value is None else round(value, digits)
    out["max"] = round(max(values), digits) if values else None
    return out


def _checks(times: list[float], gap: float) -> list[float]:
    """Start times of the checks in a job's sorted request times (requests closer than `gap`
    belong to the same check)."""
    starts: list[float] = []
    last = None
    for t in times:
        if last is None or t - last > gap:
            starts.append(t)
        last = t
    return starts


def _observed(info: dict | None) -> list[float]:
    """When the fake answered about the batch: its single reads and the list pages showing it."""
    return [*info.get("requests", []), *info.get("listed", [])] if info else []


def machine() -> dict:
    model = ""
    try:
        for line in open("/proc/cpuinfo").read().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal:"))
    except (OSError, StopIteration):
        mem_kb = 0
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def listen_overflows() -> int | None:
    """The kernel's count of connections dropped because a listening socket's backlog was
    full (TcpExt ListenOverflows), machine-wide; None where /proc does not tell. Any during a
    run means some server here (the fake, the web, Redis, PostgreSQL) accepted too slowly, and
    the client waited a second or more for the SYN-ACK's retry: a delay of this machine, not of
    the design."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            found = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(found["ListenOverflows"]) if "ListenOverflows" in found else None
    return None


def build(*, config, jobs, timings, api_samples, api_errors, processes, run) -> dict:
    interval = config["interval"]
    gap = min(1.0, interval / 3)
    batches = timings["batches"]
    by_config = defaultdict(list)
    for kb in timings["keboola_jobs"]:
        by_config[kb["config"]].append(kb)

    lags, first_lags, trigger, excess = [], [], [], []
    until_recorded, recorded_to_trigger = [], []
    actual_total = minimum_total = 0
    duplicates, missing = {}, []
    finished = [j for j in jobs if j["status"] in ("completed", "completed_with_failures", "failed")]
    finished_ids = {j["id"] for j in finished}
    for job in jobs:
        created = job["created_at"]
        times = sorted(t for b in job["batch_ids"] for t in _observed(batches.get(b)))
        starts = _checks(times, gap)
        if starts:
            first_lags.append(starts[0] - created)
            lags.extend(b - a - interval for a, b in zip(starts, starts[1:], strict=False))
        terminals = [batches[b]["terminal_at"] for b in job["batch_ids"] if b in batches]
        for b in job["batch_ids"]:
            info = batches.get(b)
            if info is None or info["terminal_at"] is None:
                continue
            # From the batch's first check: a late first check is poll lag, not a saved request.
            first = min(_observed(info), default=created)
            lifetime = info["terminal_at"] - first
            least = math.ceil(lifetime / interval) + 1 if lifetime > 0 else 1
            actual_total += len(info["requests"])
            minimum_total += least
            excess.append(len(info["requests"]) - least)
        made = by_config.get(job["keboola_configuration_id"], [])
        if len(made) > 1:
            duplicates[str(job["id"])] = [m["id"] for m in made]
        if job["id"] in finished_ids and job["status"] != "failed" and not made:
            missing.append(job["id"])
        if made and terminals and all(t is not None for t in terminals):
            triggered_at = min(m["created_at"] for m in made)
            ended = max(max(terminals), created)
            trigger.append(triggered_at - ended)
            recorded = job.get("recorded_at")
            if recorded is not None and ended <= recorded <= triggered_at:
                until_recorded.append(recorded - ended)
                recorded_to_trigger.append(triggered_at - recorded)
    statuses = defaultdict(int)
    for job in jobs:
        statuses[job["status"]] += 1
    return {
        "config": config,
        "machine": machine(),
        "run": {**run, "jobs": len(jobs), "statuses": dict(statuses)},
        "poll_lag_seconds": summary(lags),
        "first_check_lag_seconds": summary(first_lags),
        "trigger_latency_seconds": summary(trigger, points=(50, 95)),
        "trigger_latency_split_seconds": {
            "until_recorded": summary(until_recorded, points=(50, 95)),
            "recorded_to_trigger": summary(recorded_to_trigger, points=(50, 95)),
        },
        "keboola_jobs": {
            "finished_jobs": len(finished),
            "exactly_one": sum(
                1 for j in finished if len(by_config.get(j["keboola_configuration_id"], [])) == 1
            ),
            "duplicates": duplicates,
            "missing": missing,
        },
        "openai_requests": {
            "batches": len(excess),
            "actual": actual_total,
            "minimum": minimum_total,
            "ratio": round(actual_total / minimum_total, 3) if minimum_total else None,
            # GET /v1/batches pages (sweeps): not per batch, so apart from the figures above.
            "list_pages": timings.get("list_requests", 0),
            "list_walks": timings.get("list_walks", 0),
            "per_batch_check": (
                round((actual_total + timings.get("list_requests", 0)) / minimum_total, 4)
                if minimum_total
                else None
            ),
            "extra_per_batch": summary([float(e) for e in excess], points=(50, 95), digits=1),
        },
        "api_latency_ms": {
            name: {**summary(values, digits=1), "errors": api_errors.get(name, 0)}
            for name, values in sorted(api_samples.items())
        },
        "processes": [asdict(p) for p in processes],
    }


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}{unit}" if abs(value) < 10 else f"{value:.1f}{unit}"
    return f"{value}{unit}"


def render(report: dict, console=None) -> None:
    """One table (Rich) of everything in the report."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=max(120, Console().width))
    c, r = report["config"], report["run"]
    table = Table(
        title=(
            f"{r['jobs']} jobs · interval {c['interval']}s · window {c['window']:.0f}s · "
            f"{c['db']} + {c['broker']} · latency {c['latency_ms']:.0f} ms · "
            f"{c['workers']} worker(s) × {c['concurrency']}"
        ),
        show_lines=False,
    )
    table.add_column("measure")
    table.add_column("count", justify="right")
    for name in ("p50", "p95", "p99", "max"):
        table.add_column(name, justify="right")

    def row(label: str, s: dict, unit: str = "") -> None:
        table.add_row(label, str(s["count"]), *(_fmt(s.get(k), unit) for k in ("p50", "p95", "p99", "max")))

    row("poll lag (s)", report["poll_lag_seconds"])
    row("first check lag (s)", report["first_check_lag_seconds"])
    row("trigger latency (s)", report["trigger_latency_seconds"])
    if split := report.get("trigger_latency_split_seconds"):
        row("  until recorded (s)", split["until_recorded"])
        row("  recorded to trigger (s)", split["recorded_to_trigger"])
    o = report["openai_requests"]
    row(
        f"OpenAI single reads/batch over min (total {o['actual']} vs {o['minimum']}, x{o['ratio']})",
        o["extra_per_batch"],
    )
    table.add_row(
        "OpenAI requests per batch-check",
        str(o["minimum"]),
        f"{o['actual']} reads",
        f"{o.get('list_pages', 0)} pages",
        _fmt(o.get("per_batch_check")),
        f"{o.get('list_walks', 0)} walks",
    )
    for name, s in report["api_latency_ms"].items():
        row(f"{name} (ms){' · ' + str(s['errors']) + ' errors' if s['errors'] else ''}", s)
    k = report["keboola_jobs"]
    table.add_section()
    table.add_row(
        "Keboola jobs: exactly one",
        f"{k['exactly_one']}/{k['finished_jobs']}",
        f"dup {len(k['duplicates'])}",
        f"missing {len(k['missing'])}",
        "",
        "",
    )
    table.add_row(
        "run",
        str(r["jobs"]),
        f"ramp {r['ramp_seconds']}s",
        f"total {r['elapsed_seconds']}s",
        f"unfinished {r['unfinished_jobs']}",
        f"listen overflows {r.get('listen_overflows', '?')}",
    )
    table.add_section()
    table.add_row("process (MB idle / peak, CPU s)", "pid", "idle RSS", "peak RSS", "CPU s", "")
    for p in report["processes"]:
        table.add_row(
            p["role"],
            str(p["pid"]),
            _fmt(p["idle_rss_mb"]),
            _fmt(p["peak_rss_mb"]),
            _fmt(p["cpu_seconds"]),
            "",
        )
    stack = [p for p in report["processes"] if p["role"] != "fake servers"]
    table.add_row(
        "total (without the fake servers)",
        "",
        _fmt(sum(p["idle_rss_mb"] or 0 for p in stack)),
        _fmt(sum(p["peak_rss_mb"] or 0 for p in stack)),
        _fmt(sum(p["cpu_seconds"] or 0 for p in stack)),
        "",
    )
    if r.get("webhooks"):
        w = r["webhooks"]
        table.add_row(
            "webhooks: sent / accepted / refused (429)",
            str(w["sent"]),
            str(w["accepted"]),
            f"{w['refused']} ({w['refused_429']})",
            "",
            "",
        )
    console.print(table)
    if k["duplicates"]:
        console.print(f"Duplicate Keboola jobs (polling job id → Keboola ids): {k['duplicates']}")
    if k["missing"]:
        console.print(f"Finished jobs without a Keboola job: {k['missing']}")


def render_comparison(reports: dict, console=None) -> None:
    """The polling-only and the webhook run of one scenario side by side (`bench --compare`)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=max(120, Console().width))
    polling, webhooks = reports["polling"], reports["webhooks"]
    c = polling["config"]
    table = Table(
        title=(
            f"{polling['run']['jobs']} jobs · interval {c['interval']}s · window {c['window']:.0f}s · "
            f"{c['db']} + {c['broker']} · polling only vs signed webhooks · "
            f"load {polling['machine']['load_average_1m']} / {webhooks['machine']['load_average_1m']}"
        )
    )
    table.add_column("measure")
    table.add_column("polling only", justify="right")
    table.add_column("with webhooks", justify="right")

    def both(label: str, value) -> None:
        table.add_row(label, value(polling), value(webhooks))

    def deliveries(report: dict) -> str:
        w = report["run"].get("webhooks")
        if not w:
            return "-"
        return f"{w['refused']} of {w['sent']} ({w['refused_429']} × 429)"

    def latency(report: dict) -> str:
        t = report["trigger_latency_seconds"]
        return f"{_fmt(t['p50'])} / {_fmt(t['p95'])} / {_fmt(t['max'])}"

    def reads(report: dict) -> str:
        o = report["openai_requests"]
        pages = o.get("list_pages", 0)
        return f"{o['actual'] + pages} ({o['actual']} batch GETs + {pages} list pages)"

    def exactly_one(report: dict) -> str:
        k = report["keboola_jobs"]
        return f"{k['exactly_one']}/{k['finished_jobs']} (dup {len(k['duplicates'])}, missing {len(k['missing'])})"

    both("deliveries refused", deliveries)
    both(
        "delivery answered after the batch ended p50 / p95 (s)",
        lambda r: (
            "-"
            if not r["run"].get("webhooks")
            else "{p50} / {p95}".format(**r["run"]["webhooks"]["answered_after_terminal_seconds"])
        ),
    )
    both("trigger latency p50 / p95 / max (s)", latency)
    both("OpenAI requests", reads)
    both("poll lag p99 (s)", lambda r: _fmt(r["poll_lag_seconds"]["p99"]))
    both("Keboola jobs: exactly one", exactly_one)
    both("unfinished jobs", lambda r: str(r["run"]["unfinished_jobs"]))
    console.print(table)


# The side-by-side table of `manage.py bench --scale`: (label, how to read it from a report).
COMPARE_ROWS = [
    (
        "exactly one Keboola job",
        lambda r: f"{r['keboola_jobs']['exactly_one']}/{r['keboola_jobs']['finished_jobs']}",
    ),
    ("unfinished at the end", lambda r: r["run"]["unfinished_jobs"]),
    ("poll lag p99 (s)", lambda r: r["poll_lag_seconds"]["p99"]),
    ("first check lag p99 (s)", lambda r: r["first_check_lag_seconds"]["p99"]),
    ("trigger latency p95 (s)", lambda r: r["trigger_latency_seconds"]["p95"]),
    ("OpenAI requests per batch-check", lambda r: r["openai_requests"].get("per_batch_check")),
    ("OpenAI single reads", lambda r: r["openai_requests"]["actual"]),
    ("OpenAI list pages", lambda r: r["openai_requests"].get("list_pages", 0)),
    ("OpenAI list walks (about the sweeps)", lambda r: r["openai_requests"].get("list_walks", 0)),
    (
        "GET /api/jobs?limit=100 p99 (ms)",
        lambda r: r["api_latency_ms"].get("GET /api/jobs?limit=100", {}).get("p99"),
    ),
    ("GET /api/jobs/{id} p99 (ms)", lambda r: r["api_latency_ms"].get("GET /api/jobs/{id}", {}).get("p99")),
    (
        "CPU s without the fakes",
        lambda r: round(sum(p["cpu_seconds"] or 0 for p in r["processes"] if p["role"] != "fake servers"), 1),
    ),
    ("load average at the end", lambda r: r["machine"]["load_average_1m"]),
]


def render_scale(runs: list[tuple[int, str, dict]], console=None) -> None:
    """One table: a column per (jobs, way of reading), a row per figure."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=max(120, Console().width))
    first = runs[0][2]["config"]
    table = Table(
        title=(
            f"before (one read per batch) and after (list sweeps) · interval {first['interval']}s · "
            f"{first['db']} + {first['broker']} · latency {first['latency_ms']:.0f} ms · "
            f"{first['workers']} worker(s) × {first['concurrency']}"
        )
    )
    table.add_column("measure")
    for jobs, way, _ in runs:
        table.add_column(f"{jobs} {way}", justify="right")
    for label, read in COMPARE_ROWS:
        table.add_row(label, *(_fmt(read(report)) for _, _, report in runs))
    console.print(table)
