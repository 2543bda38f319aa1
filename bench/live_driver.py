"""The inside of `manage.py bench --live N`: `python -m bench.live_driver <workdir>`.

Started by bench/run.py with an environment that points at a throw-away database and broker.
It starts the web server with `manage.py start`'s command line (gunicorn with the live streams'
threads), opens N streams of GET /api/events as N clients, and measures:

- change -> event: a job is renamed (an UPDATE committed by this process) every 0.2 s; for each
  change and each client, the time from the commit returning to the client reading an event
  that shows it (or a later name: changes close together arrive as one event; one machine, one
  clock);
- GET /api/jobs/{id}, timed one request after another, with no stream open and then with the N
  streams open while the changes flow;
- the web worker's memory (RSS) and threads, idle and with the N streams open.

Writes workdir/live-report.json.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teckochecker.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from bench.procs import Child, _status_kb, children_of  # noqa: E402
from bench.scripts_driver import log, summary  # noqa: E402
from live.client import parse  # noqa: E402

CHANGES = 50
CHANGE_EVERY = 0.2
GETS = 200


class Reader(threading.Thread):
    """One client of GET /api/events: the arrival time of each renamed job's event."""

    def __init__(self, port: int, token: str):
        super().__init__(daemon=True)
        self.port, self.token = port, token
        self.arrived: dict[str, float] = {}
        self.ready = threading.Event()
        self.status: int | None = None

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request(
            "GET",
            "/api/events",
            headers={"Authorization": f"Token {self.token}", "Accept": "text/event-stream"},
        )
        response = conn.getresponse()
        self.status = response.status
        if response.status != 200:
            self.ready.set()
            return

        def chunks():
            while True:
                data = response.read1(65536)
                if not data:
                    return
                yield data

        try:
            for event in parse(chunks()):
                now = time.time()
                if event.name == "ready":
                    self.ready.set()
                elif event.name == "job":
                    self.arrived.setdefault(event.value.get("name", ""), now)
        except OSError:
            pass


def worker_pid(web: Child) -> int:
    kids = children_of(web.pid)
    return kids[0] if kids else web.pid


def figures(pid: int) -> dict:
    rss = _status_kb(pid, "VmRSS")
    threads = _status_kb(pid, "Threads")
    return {"rss_mb": round(rss / 1024, 1) if rss else None, "threads": threads}


def time_gets(port: int, token: str, job_id: int, count: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    took, errors = [], 0
    for _ in range(count):
        start = time.perf_counter()
        conn.request("GET", f"/api/jobs/{job_id}", headers={"Authorization": f"Token {token}"})
        response = conn.getresponse()
        response.read()
        took.append((time.perf_counter() - start) * 1000)
        errors += response.status != 200
    conn.close()
    return {**summary(took), "errors": errors}


def main(workdir: Path) -> None:
    config = json.loads((workdir / "config.json").read_text())
    streams = config["live"]
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from polling.models import JobBatch, JobStatus, PollingJob
    from teckochecker.management.commands import start
    from teckochecker.management.commands.start import wait_for_http

    user = get_user_model().objects.create_user(username="bench", password=os.urandom(8).hex(), is_staff=True)
    token = Token.objects.create(user=user).key
    job = PollingJob.objects.create(name="live-start", poll_interval_seconds=3600, status=JobStatus.PAUSED)
    JobBatch.objects.create(job=job, batch_id="batch_live")

    from bench.driver import free_port

    port = free_port()
    web = Child("web", start.web_argv(host="127.0.0.1", port=port), workdir / "web.log")
    web.start(env=dict(os.environ), cwd=settings.BASE_DIR)
    try:
        if not wait_for_http("127.0.0.1", port, 60, alive=web.alive):
            raise RuntimeError("the web server did not start")
        time.sleep(1)
        pid = worker_pid(web)
        idle = figures(pid)
        gets_alone = time_gets(port, token, job.pk, GETS)
        log(f"web up on :{port}; idle {idle}; GET alone p50 {gets_alone['p50']} ms")

        readers = [Reader(port, token) for _ in range(streams)]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.ready.wait(30)
        refused = sum(r.status != 200 for r in readers)
        time.sleep(1)
        open_figures = figures(pid)
        log(f"{streams} streams open ({refused} refused); {open_figures}")

        committed: dict[str, float] = {}
        timed: dict = {}
        getter = threading.Thread(target=lambda: timed.update(time_gets(port, token, job.pk, GETS)))
        getter.start()
        for i in range(CHANGES):
            name = f"live-{i}"
            PollingJob.objects.filter(pk=job.pk).update(name=name)  # autocommit: committed on return
            committed[name] = time.time()
            time.sleep(CHANGE_EVERY)
        getter.join()
        time.sleep(2)  # the last events in flight
        during = figures(pid)

        # Changes close together are one event with the newest state (live/feed.py): change i has
        # reached a client when an event showing change i or a later one has.
        latencies, missed, events = [], 0, 0
        order = list(committed)
        for reader in readers:
            if reader.status != 200:
                continue
            seen = [reader.arrived.get(name) for name in order]
            events += sum(t is not None for t in seen)
            for i, name in enumerate(order):
                later = [t for t in seen[i:] if t is not None]
                if later:
                    latencies.append((min(later) - committed[name]) * 1000)
                else:
                    missed += 1
        report = {
            "db": config["db"],
            "broker": config["broker"],
            "streams": streams,
            "refused": refused,
            "changes": CHANGES,
            "change_to_event_ms": summary(latencies),
            "changes_never_shown": missed,
            "events_per_client": round(events / max(1, streams - refused), 1),
            "get_job_ms": {"no streams": gets_alone, f"{streams} streams": timed},
            "web_worker": {
                "idle": idle,
                f"{streams} streams open": open_figures,
                "while changes flow": during,
            },
            "web_threads_configured": settings.LIVE_MAX_STREAMS + settings.WEB_THREADS,
            "live_poll_seconds": settings.LIVE_POLL_SECONDS,
        }
        (workdir / "live-report.json").write_text(json.dumps(report, indent=2))
        log(
            f"change -> event p50 {report['change_to_event_ms']['p50']} ms, p95 {report['change_to_event_ms']['p95']} ms"
        )
    finally:
        web.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
