"""A small run of `manage.py bench` (N=20) so the benchmark keeps working. No timing asserts."""

import pytest
from django.db import connection

from bench.run import BenchConfig, run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("webhooks", [False, True], ids=["polling", "webhooks"])
def test_bench_smoke_run_reports_every_figure_and_one_keboola_job_per_job(settings, webhooks):
    # The configuration the suite runs on: SQLite + file broker, or PostgreSQL + Redis in CI.
    db = "postgres" if connection.vendor == "postgresql" else "sqlite"
    broker = "redis" if settings.CELERY_BROKER_URL.startswith("redis") else "filesystem"
    report = run(
        BenchConfig(
            jobs=20, interval=2, window=3, ramp=1, db=db, broker=broker, timeout=60, webhooks=webhooks
        )
    )
    if webhooks:
        deliveries = report["run"]["webhooks"]
        assert deliveries["sent"] > 0 and deliveries["accepted"] == deliveries["sent"]
        assert deliveries["refused"] == deliveries["refused_429"] == 0  # at the default throttle
        assert deliveries["answered_after_terminal_seconds"]["count"] == deliveries["sent"]
    else:
        assert report["run"]["webhooks"] is None

    assert report["config"]["db"] == db and report["config"]["broker"] == broker
    assert report["run"]["unfinished_jobs"] == 0
    jobs = report["run"]["jobs"]
    assert jobs == 20 + report["config"]["api_posts"]
    keboola = report["keboola_jobs"]
    assert keboola["duplicates"] == {} and keboola["missing"] == []
    assert keboola["finished_jobs"] == keboola["exactly_one"] == jobs
    for key in ("poll_lag_seconds", "first_check_lag_seconds"):
        assert set(report[key]) == {"count", "p50", "p95", "p99", "max"}
    assert report["first_check_lag_seconds"]["count"] == jobs
    assert set(report["trigger_latency_seconds"]) == {"count", "p50", "p95", "max"}
    assert report["trigger_latency_seconds"]["count"] == jobs
    split = report["trigger_latency_split_seconds"]
    assert 0 < split["until_recorded"]["count"] == split["recorded_to_trigger"]["count"] <= jobs
    requests = report["openai_requests"]
    # Single reads and list pages (the sweeps) together; every batch was observed.
    assert requests["actual"] + requests["list_pages"] > 0 and requests["batches"] > 0
    assert requests["minimum"] > 0 and requests["per_batch_check"] > 0
    assert set(report["api_latency_ms"]) == {
        "GET /api/jobs?limit=100",
        "GET /api/jobs/{id}",
        "GET /api/stats",
        "POST /api/jobs",
    }
    for figures in report["api_latency_ms"].values():
        assert figures["count"] > 0 and figures["errors"] == 0
    roles = [p["role"] for p in report["processes"]]
    assert "beat" in roles and "worker 1" in roles and "web" in roles
    for process in report["processes"]:
        assert process["peak_rss_mb"] > 0 and process["cpu_seconds"] is not None
