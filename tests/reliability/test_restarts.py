"""Beat, the web server, Redis and PostgreSQL restarted mid-run: everything reconnects by itself.

Redis is restarted as a private `redis-server` on a free port (same binary and options as CI's),
so a restart never cuts off anyone else's Redis on this machine. PostgreSQL is the real server,
restarted with `pg_ctlcluster ... restart`.
"""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from rest_framework.authtoken.models import Token

from polling.tests.stack import wait_for
from tests.reliability.harness import (
    POLL_INTERVAL,
    assert_exactly_once,
    assert_no_canary_leaked,
    fault_run,
    finish_batches,
    max_rate,
    record_metrics,
    require_service,
    wait_first_checks,
    wait_until_finished,
)

pytestmark = [pytest.mark.slow, pytest.mark.serial, pytest.mark.django_db(transaction=True)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(stack) -> dict[str, bool]:
    return {role: proc.poll() is None for role, proc in stack.procs.items()}


def _requests_by_batch(fake) -> dict[str, list[float]]:
    out = defaultdict(list)
    for r in fake.requests("openai.retrieve"):
        out[r["target"]].append(r["time"])
    return out


def test_beat_restart_causes_no_burst_of_duplicate_polls(fake_openai_settings, request):
    fake = fake_openai_settings
    with fault_run(request, fake) as (stack, fleet):
        wait_first_checks(fleet)
        stack.stop("beat")
        time.sleep(POLL_INTERVAL + 1)  # every job falls due while beat is away
        restarted = time.time()
        stack.start_beat()
        time.sleep(3 * POLL_INTERVAL)
        window_end = time.time()
        finish_batches(fleet)
        wait_until_finished(fleet, stack, timeout=90)
        assert _alive(stack)["beat"]

    by_batch = _requests_by_batch(fake)
    times = [t for ts in by_batch.values() for t in ts]
    after = {b: [t for t in ts if restarted <= t <= window_end] for b, ts in by_batch.items()}
    # At most one check per interval, plus one for the catch-up right after the restart.
    minimum = (window_end - restarted) / POLL_INTERVAL
    most = max(len(ts) for ts in after.values())
    # A check is accepted half an interval early (queue delay), never closer than that.
    closest = min(b - a for ts in by_batch.values() for a, b in zip(sorted(ts), sorted(ts)[1:], strict=False))
    assert_exactly_once(fleet)
    assert most <= int(minimum) + 1, f"a batch was checked {most} times in {window_end - restarted:.0f}s"
    assert closest >= POLL_INTERVAL / 2 - 0.3, f"two checks of one batch {closest:.2f}s apart"
    assert_no_canary_leaked(fleet, request.node.name)
    record_metrics(
        request.node.name,
        jobs=len(fleet.job_ids),
        seconds_observed_after_restart=round(window_end - restarted, 1),
        minimum_checks_per_batch=round(minimum, 1),
        most_checks_of_one_batch_after_restart=most,
        closest_two_checks_of_one_batch_seconds=round(closest, 2),
        max_requests_per_second_after_restart=max_rate(times, restarted, window_end),
        seconds_total=fleet.seconds,
    )


def _get(url: str, token: str | None = None, method: str = "GET", body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - our own server
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Token {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def _start_web(stack, port: int):
    gunicorn = Path(sys.executable).with_name("gunicorn")
    args = [str(gunicorn), "teckochecker.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    stack.start("web", [*args, "--workers", "1", "--threads", "4", "--graceful-timeout", "5"])
    url = f"http://127.0.0.1:{port}"

    def serving():
        with contextlib.suppress(OSError):
            return _get(f"{url}/api/health")[0] in (200, 503)
        return False

    wait_for(serving, timeout=30, message="the web server")
    return url


def test_web_server_restart_keeps_the_api_working(fake_openai_settings, request, django_user_model):
    fake = fake_openai_settings
    user = django_user_model.objects.create_user(
        username="ops", password="a-long-test-password", is_staff=True
    )
    token = Token.objects.create(user=user).key
    port = _free_port()
    with fault_run(request, fake) as (stack, fleet):
        url = _start_web(stack, port)
        assert _get(f"{url}/api/jobs?limit=5", token)[0] == 200
        stack.stop("web")  # SIGTERM: gunicorn finishes what it serves, then exits
        with pytest.raises(OSError):
            _get(f"{url}/api/health")
        _start_web(stack, port)
        status, page = _get(f"{url}/api/jobs?limit=5", token)
        assert status == 200 and page["total"] == len(fleet.job_ids)
        one = fleet.job_ids[0]
        status, job = _get(f"{url}/api/jobs/{one}", token, "PUT", {"name": "renamed after restart"})
        assert status == 200 and job["name"] == "renamed after restart"
        assert _get(f"{url}/api/jobs", None)[0] == 401
        finish_batches(fleet)
        wait_until_finished(fleet, stack, timeout=90)
        status, stats = _get(f"{url}/api/stats", token)
        assert status == 200 and stats["total_jobs"] == len(fleet.job_ids)
    assert_exactly_once(fleet)
    assert_no_canary_leaked(fleet, request.node.name)
    record_metrics(request.node.name, jobs=len(fleet.job_ids), seconds_total=fleet.seconds)


class PrivateRedis:
    """A throwaway redis-server on a free port, started and stopped like CI's own."""

    def __init__(self):
        self.binary = shutil.which("redis-server")
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        subprocess.run(
            [self.binary, "--daemonize", "yes", "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--dir", "/tmp"],
            check=True, capture_output=True,
        )  # fmt: skip
        wait_for(self.ping, timeout=10, message="redis-server")

    def ping(self) -> bool:
        cli = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, text=True)
        return cli.stdout.strip() == "PONG"

    def stop(self):
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True)
        wait_for(lambda: not self.ping(), timeout=10, message="redis-server to stop")


KOMBU_RACE = "Unrecoverable error: AttributeError(\"'NoneType' object has no attribute 'hostname'\")"


def _replace_workers_killed_by_the_kombu_race(stack) -> int:
    """Known bug (docs/RELIABILITY.md): a worker that loses Redis can exit with kombu's
    `_connparams` AttributeError instead of reconnecting. A supervisor (`manage.py start`,
    Docker's restart policy) starts it again; so does this test. Any other death fails."""
    died = 0
    for role, alive in list(_alive(stack).items()):
        if not alive and role.startswith("worker"):
            assert KOMBU_RACE in stack.log(role), f"{role} died:\n{stack.log(role)[-3000:]}"
            stack.stop(role)
            stack.start_worker(10 + died)
            died += 1
    return died


def test_redis_restart_mid_run_worker_and_beat_reconnect(fake_openai_settings, request):
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("the broker is not Redis in this configuration")
    require_service(
        bool(shutil.which("redis-server") and shutil.which("redis-cli")), "redis-server is not installed"
    )
    redis = PrivateRedis()
    redis.start()
    fake = fake_openai_settings
    try:
        with fault_run(request, fake, CELERY_BROKER_URL=redis.url) as (stack, fleet):
            # The jobs' first checks went to the suite's own Redis; beat sends them here instead.
            import redis as redis_client

            redis_client.Redis.from_url(settings.CELERY_BROKER_URL).delete(settings.CELERY_TASK_DEFAULT_QUEUE)
            wait_first_checks(fleet)
            redis.stop()
            down_at = time.monotonic()
            time.sleep(5)
            redis.start()
            up_at = time.monotonic()
            finish_batches(fleet)
            time.sleep(3)
            died = _replace_workers_killed_by_the_kombu_race(stack)
            wait_until_finished(fleet, stack, timeout=180)
            recovered = time.monotonic() - up_at
            assert all(_alive(stack).values()), _alive(stack)
    finally:
        redis.stop()
    assert_exactly_once(fleet)
    assert_no_canary_leaked(fleet, request.node.name)
    record_metrics(
        request.node.name,
        jobs=len(fleet.job_ids),
        redis_down_seconds=round(up_at - down_at, 1),
        workers_died_in_kombu_reconnect=died,
        seconds_to_finish_after_redis_back=round(recovered, 1),
        seconds_total=fleet.seconds,
    )


def _pg_version() -> str | None:
    versions = sorted(Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").exists() else []
    return versions[-1].name if versions else None


@contextlib.contextmanager
def _admin_connection():
    import psycopg

    params = connection.settings_dict
    conninfo = {"host": params.get("HOST") or "127.0.0.1", "port": params.get("PORT") or 5432}
    with psycopg.connect(dbname="postgres", user=params.get("USER") or "postgres",
                         password=params.get("PASSWORD") or None, autocommit=True, **conninfo) as admin:  # fmt: skip
        yield admin


def _postgres_outage(seconds: float) -> str:
    """Take PostgreSQL away from this test's database for `seconds`.

    By default only this test database goes away: every session on it is terminated (what a
    server restart does to its clients: "terminating connection due to administrator command")
    and new connections are refused until it is back. Other databases on the server - other
    runs of the suite, a benchmark - are left alone. RELIABILITY_RESTART_POSTGRES=1 restarts the
    whole server with pg_ctlcluster instead.
    """
    name = connection.settings_dict["NAME"]
    connection.close()
    if os.environ.get("RELIABILITY_RESTART_POSTGRES") == "1":
        version = _pg_version()
        require_service(bool(version and shutil.which("pg_ctlcluster")), "pg_ctlcluster is not available")
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop", "-m", "fast"],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        time.sleep(seconds)
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        return "server restarted"
    with _admin_connection() as admin:
        try:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            cut = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s", [name]
            ).fetchone()[0]
            time.sleep(seconds)
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    return f"database taken away, {cut} sessions cut"


def test_postgresql_restart_mid_run_worker_and_beat_reconnect(fake_openai_settings, request):
    if connection.vendor != "postgresql":
        pytest.skip("the database is not PostgreSQL in this configuration")
    fake = fake_openai_settings
    with fault_run(request, fake) as (stack, fleet):
        wait_first_checks(fleet)
        started = time.monotonic()
        how = _postgres_outage(5)
        back_at = time.monotonic()
        finish_batches(fleet)
        wait_until_finished(fleet, stack, timeout=180)
        recovered = time.monotonic() - back_at
        assert all(_alive(stack).values()), _alive(stack)
    assert_exactly_once(fleet)
    assert_no_canary_leaked(fleet, request.node.name)
    record_metrics(
        request.node.name,
        jobs=len(fleet.job_ids),
        outage=how,
        outage_seconds=round(back_at - started, 1),
        seconds_to_finish_after_database_back=round(recovered, 1),
        seconds_total=fleet.seconds,
    )
