"""`manage.py bench`: run the real stack against the fakes in a throw-away database and report.

This module is the outside of the run: it makes the database (PostgreSQL `teckochecker_bench_<pid>`
or a temporary SQLite file), chooses the broker, then starts `python -m bench.driver` with an
environment that points everything at them. The driver starts the fake servers, the web server,
the worker(s) and beat, creates the jobs and measures; this module drops the database afterwards,
whatever happened.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from django.conf import settings

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class BenchConfig:
    jobs: int = 100
    interval: int = 30
    window: float | None = None  # batches finish at random times over this many seconds
    ramp: float | None = None  # jobs are created over this many seconds (default: one interval)
    db: str = "sqlite"
    broker: str = "filesystem"
    latency_ms: float = 50.0
    workers: int = 1
    concurrency: int = 8
    timeout: float | None = None
    api_posts: int | None = None  # POST /api/jobs samples (default: N / 10, 5 to 50)
    seed: int = 7
    webhooks: bool = False  # the fake also sends signed OpenAI webhooks to the web server
    sweeps: bool = True  # False: OPENAI_SWEEP=false, one GET per batch (the way before the sweeps)
    scripts: int = 0  # >0: the scripts benchmark instead (bench/scripts_driver.py) with this many
    minutes: int = 3  # ... one-minute cron firings measured
    samples: int = 20  # ... single runs measured for the overhead
    soak: int = 0  # >0: a memory soak of this many minutes instead (bench/soak.py)
    soak_warmup: int = 5  # ... growth is measured from this minute to the end
    live: int = 0  # >0: the live updates benchmark instead (bench/live_driver.py) with this many streams

    def resolved(self) -> BenchConfig:
        window = self.window if self.window is not None else 3 * self.interval
        ramp = self.ramp if self.ramp is not None else self.interval
        timeout = self.timeout
        if timeout is None:
            timeout = ramp + window + 4 * self.interval + 120 + self.jobs / 50
        posts = self.api_posts if self.api_posts is not None else min(50, max(5, self.jobs // 10))
        return BenchConfig(
            **{**asdict(self), "window": window, "ramp": ramp, "timeout": timeout, "api_posts": posts}
        )


class BenchFailed(Exception):
    pass


def _postgres_server_url() -> str:
    if os.environ.get("BENCH_POSTGRES_URL"):
        return os.environ["BENCH_POSTGRES_URL"]
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.postgresql":
        password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
        return f"postgresql://{db.get('USER') or 'postgres'}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/postgres"
    return DEFAULT_POSTGRES_URL


def _redis_url() -> str:
    if os.environ.get("BENCH_REDIS_URL"):
        return os.environ["BENCH_REDIS_URL"]
    if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        return settings.CELERY_BROKER_URL
    return DEFAULT_REDIS_URL


class _Postgres:
    def __init__(self, server_url: str, name: str) -> None:
        self.server_url, self.name = server_url, name

    def _execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(sql)

    def create(self) -> str:
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._execute(f'CREATE DATABASE "{self.name}"')
        return self.server_url.rsplit("/", 1)[0] + f"/{self.name}"

    def drop(self) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def _drop_redis_queue(url: str, queue: str) -> None:
    try:
        import redis

        client = redis.Redis.from_url(url)
        keys = [queue, *client.keys(f"{queue}*"), *client.keys(f"_kombu.binding.{queue}*")]
        if keys:
            client.delete(*keys)
    except Exception as exc:  # a leftover key is untidy, not a failed benchmark
        print(f"warning: could not remove the bench queue from Redis: {exc}", file=sys.stderr)


def run_compare(config: BenchConfig, *, keep: bool = False, echo=print) -> dict:
    """The same scenario twice, polling only and then with webhooks: {"polling": report,
    "webhooks": report} (bench/report.py, render_comparison)."""
    reports = {}
    for name, webhooks in (("polling", False), ("webhooks", True)):
        echo(f"bench: run {len(reports) + 1} of 2, {name}")
        reports[name] = run(replace(config, webhooks=webhooks), keep=keep, echo=echo)
    return reports


def run(config: BenchConfig, *, keep: bool = False, echo=print) -> dict:
    """Run the whole benchmark and return the report (see bench/report.py for its keys)."""
    config = config.resolved()
    if config.db not in ("sqlite", "postgres"):
        raise BenchFailed("--db must be sqlite or postgres")
    if config.broker not in ("filesystem", "redis"):
        raise BenchFailed("--broker must be filesystem or redis")
    from cryptography.fernet import Fernet

    workdir = Path(tempfile.mkdtemp(prefix="teckochecker-bench-"))
    queue = f"teckochecker-bench-{os.getpid()}"
    postgres = (
        _Postgres(_postgres_server_url(), f"teckochecker_bench_{os.getpid()}")
        if config.db == "postgres"
        else None
    )
    broker_url = _redis_url() if config.broker == "redis" else "filesystem://localhost/"
    ok = False
    try:
        database_url = postgres.create() if postgres else f"sqlite:///{workdir / 'bench.sqlite3'}"
        env = {
            **os.environ,
            "TECKOCHECKER_ENV_FILE": "none",
            "DJANGO_SETTINGS_MODULE": "teckochecker.settings",
            "DEBUG": "false",
            "HTTPS_ONLY": "false",
            "SECRET_KEY": f"bench-only-secret-key-{os.urandom(16).hex()}",
            "FERNET_KEYS": Fernet.generate_key().decode(),
            "DATABASE_URL": database_url,
            "CELERY_BROKER_URL": broker_url,
            "CELERY_QUEUE": queue,
            "DATA_DIR": str(workdir),
            "ALLOW_LOCAL_URLS": "true",
            # Short intervals (the CI smoke run) need a lower floor than production's 30 s.
            "MIN_POLL_INTERVAL": str(min(30, config.interval)),
            "API_THROTTLE_USER": "10000000/minute",
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "PYTHONUNBUFFERED": "1",
            "OPENAI_SWEEP": "true" if config.sweeps else "false",
        }
        (workdir / "config.json").write_text(json.dumps(asdict(config)))
        what = (
            f"{config.live} open streams of /api/events"
            if config.live
            else f"{config.scripts} scripts on a one-minute cron, {config.minutes} minute(s)"
            if config.scripts
            else f"{config.jobs} jobs, interval {config.interval}s, window {config.window:.0f}s, "
            + ("list sweeps" if config.sweeps else "single reads")
        )
        echo(
            f"bench: {what}, {config.db} + {config.broker}, fake latency {config.latency_ms:.0f} ms; "
            f"work dir {workdir}"
        )
        module, report_name = (
            ("bench.live_driver", "live-report.json")
            if config.live
            else ("bench.scripts_driver", "scripts-report.json")
            if config.scripts
            else ("bench.driver", "report.json")
        )
        driver = subprocess.run(
            [sys.executable, "-m", module, str(workdir)],
            env=env,
            cwd=settings.BASE_DIR,
            check=False,
        )
        report_path = workdir / report_name
        if driver.returncode != 0 or not report_path.exists():
            raise BenchFailed(f"the benchmark driver failed (exit {driver.returncode}); logs in {workdir}")
        ok = True
        return json.loads(report_path.read_text())
    finally:
        if postgres:
            postgres.drop()
        if config.broker == "redis":
            _drop_redis_queue(broker_url, queue)
        if ok and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
