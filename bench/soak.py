"""The soak figures of `manage.py bench --soak MINUTES`: does any process's memory keep growing?

The driver samples the resident memory (VmRSS) of every process of the stack (the fake servers
excluded) every `SAMPLE_SECONDS`. Memory grows at first whatever the code does: imports done on
first use (the OpenAI SDK at the first batch read), caches filling, the allocator reaching its
working set. So growth is measured from the end of a warm-up (the first sample at or after
`warmup` minutes) to the end of the run, per process and for the whole tree.

A process is named by its role (`bench.idle.role`), not its pid, so a gunicorn worker recycled
by `--max-requests` is the same row, with `restarts` counting the new pids.
"""

from __future__ import annotations

SAMPLE_SECONDS = 30.0
GROWTH_LIMIT_PERCENT = 5.0


def sample(pids: list[int], elapsed: float) -> dict:
    """One reading: {"t": seconds since the load began, "rss": {role: MB}, "pids": {role: pid}}."""
    from bench.idle import tree

    rss: dict[str, float] = {}
    roles: dict[str, int] = {}
    for pid in pids:
        for row in tree(pid):
            name = row["process"]
            while name in rss:  # two processes of one role (e.g. --workers 2)
                name += "'"
            rss[name] = row["rss_mb"]
            roles[name] = row["pid"]
    return {"t": round(elapsed, 1), "rss": rss, "pids": roles}


def summarize(samples: list[dict], warmup_seconds: float) -> dict:
    """Per role and in total: RSS at the first sample, after the warm-up, at the end, and the
    growth from after the warm-up to the end in percent."""
    if not samples:
        return {"rows": [], "total": None, "warm_sample_t": None, "end_sample_t": None}
    first = samples[0]
    warm = next((s for s in samples if s["t"] >= warmup_seconds), samples[-1])
    end = samples[-1]
    rows = []
    for name in end["rss"]:
        seen = {s["pids"][name] for s in samples if name in s["pids"]}
        rows.append(
            {
                "process": name,
                "start_mb": first["rss"].get(name),
                "warm_mb": warm["rss"].get(name),
                "end_mb": end["rss"][name],
                "max_mb": max(s["rss"][name] for s in samples if name in s["rss"]),
                "growth_percent": _growth(warm["rss"].get(name), end["rss"][name]),
                "restarts": len(seen) - 1,
            }
        )
    totals = {
        key: round(sum(r[key] or 0 for r in rows), 1) for key in ("start_mb", "warm_mb", "end_mb", "max_mb")
    }
    totals["growth_percent"] = _growth(totals["warm_mb"], totals["end_mb"])
    return {"rows": rows, "total": totals, "warm_sample_t": warm["t"], "end_sample_t": end["t"]}


def _growth(before: float | None, after: float) -> float | None:
    if not before:
        return None
    return round((after - before) / before * 100, 1)


def render(report: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=max(120, Console().width))
    c, s, r = report["config"], report["memory"], report["run"]
    table = Table(
        title=(
            f"soak: {c['jobs']} jobs for {c['soak']} min · interval {c['interval']}s · "
            f"{c['db']} + {c['broker']} · growth measured from minute {s['warm_sample_t'] / 60:.1f} "
            f"to minute {s['end_sample_t'] / 60:.1f}"
        )
    )
    for column in ("process", "start MB", "after warm-up MB", "end MB", "max MB", "growth %", "restarts"):
        table.add_column(column, justify="left" if column == "process" else "right")
    for row in s["rows"]:
        table.add_row(
            row["process"],
            *(_mb(row[k]) for k in ("start_mb", "warm_mb", "end_mb", "max_mb")),
            _pct(row["growth_percent"]),
            str(row["restarts"]),
        )
    t = s["total"]
    table.add_section()
    table.add_row(
        "total",
        *(_mb(t[k]) for k in ("start_mb", "warm_mb", "end_mb", "max_mb")),
        _pct(t["growth_percent"]),
        "",
    )
    console.print(table)
    console.print(
        f"OpenAI requests {r['openai_requests']}, jobs POSTed during the soak {r['api_jobs']} "
        f"({r['api_jobs_triggered']} triggered, Keboola duplicates {r['keboola_duplicates']}), "
        f"API requests {r['api_requests']} ({r['api_errors']} errors), load average {report['machine']['load_average_1m']}"
    )
    over = [row["process"] for row in s["rows"] if (row["growth_percent"] or 0) > GROWTH_LIMIT_PERCENT]
    verdict = (
        f"over {GROWTH_LIMIT_PERCENT:g} %: {', '.join(over)}"
        if over
        else f"no process grew over {GROWTH_LIMIT_PERCENT:g} %"
    )
    console.print(f"After the warm-up, {verdict}.")


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"
