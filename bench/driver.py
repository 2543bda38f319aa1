"""The inside of a benchmark run: `python -m bench.driver <workdir>` (started by bench/run.py).

Its environment already points at the throw-away database and broker. It migrates, starts the
fake servers, the web server, the worker(s) and beat as separate processes (the same command
lines as `manage.py start`), creates the jobs through the service layer, measures the API while
the engine works, waits until every job has finished, then writes workdir/report.json.
"""

from __future__ import annotations

import datetime
import http.client
import io
import json
import os
import random
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teckochecker.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import close_old_connections, connection  # noqa: E402

from bench import report as bench_report  # noqa: E402
from bench import soak as bench_soak  # noqa: E402
from bench.procs import Child, wait_until  # noqa: E402
from fakes.client import RemoteFake  # noqa: E402

# How many batches a job watches (1-10) and how often: the mean is about 3.
BATCH_COUNT_WEIGHTS = [30, 22, 16, 10, 7, 5, 4, 3, 2, 1]
FAILED_BATCH_SHARE = 0.05
SOAK_POST_SECONDS = 2.0


STARTED = time.monotonic()


def log(message: str) -> None:
    print(f"bench [{time.monotonic() - STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ApiClient:
    """A keep-alive HTTP client for the API (stdlib: only the integrations import `requests`)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, float, object]:
        """(status, milliseconds, decoded JSON body); reconnects once if the server closed."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            began = time.perf_counter()
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                raw = response.read()
            except (http.client.HTTPException, ConnectionError):
                self.close()
                if attempt == 2:
                    raise
                continue
            elapsed = (time.perf_counter() - began) * 1000
            return response.status, elapsed, json.loads(raw) if raw else None
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Plan:
    """One polling job the benchmark creates: its batches and when each turns terminal."""

    index: int
    batches: list[tuple[str, float, str]]  # (batch id, terminal at (wall clock), outcome)
    due: float  # the first check is due at this moment (wall clock)


class Driver:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.config = json.loads((workdir / "config.json").read_text())
        self.rng = random.Random(self.config["seed"])
        self.children: list[Child] = []
        self.env = dict(os.environ)
        self.api_samples: dict[str, list[float]] = {}
        self.api_errors: dict[str, int] = {}
        self.api_job_ids: list[int] = []
        self.job_ids: list[int] = []
        self.stop_api = threading.Event()

    # --- the stack --------------------------------------------------------------------------
    def start_stack(self) -> None:
        began = time.monotonic()
        call_command("migrate", interactive=False, verbosity=0)
        call_command("sync_schedules", stdout=io.StringIO())
        log(f"migrated in {time.monotonic() - began:.1f}s")
        connection.close()
        fake = Child(
            "fake servers",
            [
                sys.executable,
                "manage.py",
                "fakeservers",
                "--port",
                "0",
                "--latency-ms",
                str(self.config["latency_ms"]),
            ],
            self.workdir / "fake.log",
        ).start(env=self.env, cwd=settings.BASE_DIR)
        self.children.append(fake)
        url = wait_until(lambda: self._fake_url(fake), timeout=30, what="the fake servers")
        self.fake = RemoteFake(url, timeout=120)
        self.env["OPENAI_BASE_URL"] = self.fake.openai_base_url
        settings.OPENAI_BASE_URL = self.fake.openai_base_url

        from teckochecker.management.commands import start

        # The command lines of `manage.py start`. Beat runs as a process of its own, so that its
        # figures stay apart, unless BENCH_BEAT=thread: then, as in `start`, a thread of worker 1.
        beat_thread = os.environ.get("BENCH_BEAT", "process") == "thread"
        self.port = free_port()
        web = start.web_argv(host="127.0.0.1", port=self.port)
        self.children.append(
            Child("web", web, self.workdir / "web.log").start(env=self.env, cwd=settings.BASE_DIR)
        )
        for i in range(1, self.config["workers"] + 1):
            worker = start.worker_argv(concurrency=self.config["concurrency"], beat=beat_thread and i == 1)
            role = f"worker {i}" + (" + beat" if beat_thread and i == 1 else "")
            child = Child(role, [*worker, "-n", f"bench-w{i}@%h"], self.workdir / f"worker{i}.log")
            self.children.append(child.start(env=self.env, cwd=settings.BASE_DIR))
        if not beat_thread:
            beat = Child("beat", start.beat_argv(), self.workdir / "beat.log")
            self.children.append(beat.start(env=self.env, cwd=settings.BASE_DIR))
        scripts = Child("scripts worker", start.scripts_worker_argv(), self.workdir / "scripts-worker.log")
        self.children.append(scripts.start(env=self.env, cwd=settings.BASE_DIR))
        wait_for_http = start.wait_for_http

        if not wait_for_http("127.0.0.1", self.port, 60, alive=self._all_alive):
            raise RuntimeError("the web server did not start")
        for child in self.children:
            if "worker" in child.role:
                wait_until(lambda c=child: "ready" in c.log_tail(200), timeout=60, what=f"{child.role}")
        wait_until(self._all_alive, timeout=1, what="every process")
        time.sleep(3)  # let beat load its schedule before measuring idle memory
        for child in self.children:
            child.mark_idle()
        log(f"stack up: web on :{self.port}, {self.config['workers']} worker(s), beat, fakes at {url}")

    def _fake_url(self, fake: Child) -> str | None:
        match = re.search(r"listening on (http://\S+)", fake.log_tail(5))
        if not fake.alive():
            raise RuntimeError(f"the fake servers exited:\n{fake.log_tail()}")
        return match.group(1) if match else None

    def _all_alive(self) -> bool:
        dead = [c for c in self.children if not c.alive()]
        if dead:
            raise RuntimeError(f"{dead[0].role} exited:\n{dead[0].log_tail()}")
        return True

    def stop_stack(self) -> None:
        began = time.monotonic()
        for child in self.children:  # all at once: the figures are already taken
            child.terminate()
        for child in self.children:
            child.stop()
        log(f"stopped every process in {time.monotonic() - began:.1f}s")

    # --- the load ---------------------------------------------------------------------------
    def setup_credentials(self) -> None:
        from django.contrib.auth import get_user_model
        from rest_framework.authtoken.models import Token

        from secrets_vault.services import secret_create

        user = get_user_model().objects.create_user(username="bench", is_staff=True, is_superuser=True)
        self.token = Token.objects.create(user=user).key
        self.openai_secret = secret_create(name="bench-openai", type="openai", value="sk-bench").pk
        self.keboola_secret = secret_create(name="bench-keboola", type="keboola", value="kbc-bench").pk
        if self.config.get("webhooks"):
            from fakes.webhooks import new_webhook_secret

            whsec = new_webhook_secret()
            secret_create(name="bench-openai-webhook", type="openai_webhook", value=whsec)
            self.fake.send_webhooks(url=f"http://127.0.0.1:{self.port}/api/webhooks/openai", secret=whsec)
            log("webhooks on: the fake signs and sends batch.* events to the web server")

    def plan_jobs(self) -> list[Plan]:
        """Job i is first due `due` seconds after the start, spread over the ramp; its batches
        turn terminal at random moments within the window that begins when the ramp ends."""
        window, ramp, n = self.config["window"], self.config["ramp"], self.config["jobs"]
        # A soak keeps every job active through the soak: its batches finish an hour after it.
        finish_from = ramp + (self.config["soak"] * 60 + 3600 if self.config.get("soak") else 0)
        plans = []
        for index in range(n):
            count = self.rng.choices(range(1, 11), weights=BATCH_COUNT_WEIGHTS)[0]
            batches = []
            for k in range(count):
                outcome = "failed" if self.rng.random() < FAILED_BATCH_SHARE else "completed"
                batches.append(
                    (f"batch_bench_{index}_{k}", finish_from + self.rng.uniform(0, window), outcome)
                )
            plans.append(Plan(index, batches, due=ramp * index / n))
        return plans

    def _add_fake_batches(self, plans: list[Plan], start: float) -> None:
        now = time.time()
        self.fake.add_batches(
            [
                {"id": batch_id, "finish_after": max(0.0, start + at - now), "outcome": outcome}
                for plan in plans
                for batch_id, at, outcome in plan.batches
            ]
        )

    def create_jobs(self) -> None:
        """Store the N jobs in bulk, as if they had been created one by one over the ramp.

        The first job goes through `job_create` (the path of the API, admin and CLI, which
        validates everything); the others are copies of its row with their own name,
        configuration and batches, so every stored job looks exactly like a created one. They
        are inserted not yet due, then given their due times (spread over the ramp) in one
        transaction: the engine sees all N at once, as in a steady state, however long the
        inserts took on a busy machine. POST /api/jobs during the run still creates jobs one by
        one through the API.
        """
        from django.db import transaction

        from polling.models import JobBatch, PollingJob, PollingLog
        from polling.services import job_create

        began = time.time()
        n, ramp = self.config["jobs"], self.config["ramp"]
        plans = self.plan_jobs()
        first = plans[0]
        self._add_fake_batches([first], began)
        template = job_create(
            name="bench-0",
            batch_ids=[b[0] for b in first.batches],
            openai_secret_id=self.openai_secret,
            keboola_secret_id=self.keboola_secret,
            keboola_stack_url=self.fake.stack_url,
            keboola_component_id="kds-team.app-custom-python",
            keboola_configuration_id="bench-0",
            poll_interval_seconds=self.config["interval"],
        )
        row = {
            f.attname: getattr(template, f.attname)
            for f in PollingJob._meta.concrete_fields
            if not f.primary_key
        }
        far = datetime.datetime(2999, 1, 1, tzinfo=datetime.UTC)
        copies = [
            PollingJob(**{**row, "name": f"bench-{p.index}", "keboola_configuration_id": f"bench-{p.index}"})
            for p in plans[1:]
        ]
        for job in copies:
            job.next_check_at = far
        with transaction.atomic():
            copies = PollingJob.objects.bulk_create(copies, batch_size=1000)
        ids = [job.pk for job in copies]
        if any(pk is None for pk in ids):  # bulk_create sets pks on PostgreSQL and SQLite 3.35+
            raise RuntimeError("bulk_create did not return primary keys")
        log(f"stored {n} jobs in {time.time() - began:.1f}s; giving them their batches and due times")

        start = time.time() + 2 + n / 4000  # the writes below end before the first copy is due
        self._add_fake_batches(plans[1:], start)
        with transaction.atomic():
            JobBatch.objects.bulk_create(
                [
                    JobBatch(job_id=pk, batch_id=batch_id, created_at=template.created_at)
                    for pk, plan in zip(ids, plans[1:], strict=True)
                    for batch_id, _, _ in plan.batches
                ],
                batch_size=2000,
            )
            PollingLog.objects.bulk_create(
                [
                    PollingLog(
                        job_id=pk,
                        status="created",
                        message=f"Job created watching {len(p.batches)} batch(es).",
                    )
                    for pk, p in zip(ids, plans[1:], strict=True)
                ],
                batch_size=2000,
            )
            # Due times in steps of 0.1 s: one UPDATE per step instead of one per job.
            steps: dict[float, list[int]] = {}
            for pk, plan in zip(ids, plans[1:], strict=True):
                steps.setdefault(round(start + plan.due, 1), []).append(pk)
            for due, step in steps.items():
                when = datetime.datetime.fromtimestamp(due, datetime.UTC)
                PollingJob.objects.filter(pk__in=step).update(created_at=when, next_check_at=when)
        late = time.time() - start
        self.job_ids = [template.pk, *ids]
        self.create_seconds = time.time() - began
        log(
            f"{n} jobs stored in {self.create_seconds:.1f}s, due over the next {ramp:.0f}s"
            + (f" (the first {late:.1f}s late)" if late > 0 else "")
        )
        time.sleep(max(0.0, start + ramp - time.time()))  # the API is measured with every job active
        self.ramp_seconds = time.time() - start

    def api_load(self) -> None:
        """Requests one after another while the engine works (a person or a script using the API)."""
        client = ApiClient("127.0.0.1", self.port, self.token)
        posts = 0
        rng = random.Random(self.config["seed"] + 1)
        endpoints = ["GET /api/jobs?limit=100", "GET /api/jobs/{id}", "GET /api/stats", "POST /api/jobs"]
        step = 0
        # A soak POSTs without end, one job every SOAK_POST_SECONDS (each triggers Keboola within
        # an interval), so creating and triggering run through the whole soak.
        soak = bool(self.config.get("soak"))
        next_post = 0.0
        while not self.stop_api.is_set():
            name = endpoints[step % len(endpoints)]
            step += 1
            body = None
            if name.startswith("POST"):
                if soak and time.monotonic() < next_post:
                    continue
                if not soak and posts >= self.config["api_posts"]:
                    continue
                next_post = time.monotonic() + SOAK_POST_SECONDS
                batch_id = f"batch_api_{posts}"
                self.fake.add_batch(batch_id, finish_after=rng.uniform(0, self.config["interval"]))
                body = {
                    "name": f"api-{posts}",
                    "batch_ids": [batch_id],
                    "openai_secret_id": self.openai_secret,
                    "keboola_secret_id": self.keboola_secret,
                    "keboola_stack_url": self.fake.stack_url,
                    "keboola_component_id": "kds-team.app-custom-python",
                    "keboola_configuration_id": f"api-{posts}",
                    "poll_interval_seconds": self.config["interval"],
                }
                posts += 1
            method, path = name.split(" ", 1)
            path = path.replace("{id}", str(rng.choice(self.job_ids)))
            status, elapsed, payload = client.request(method, path, body)
            if status >= 400:
                self.api_errors[name] = self.api_errors.get(name, 0) + 1
            else:
                self.api_samples.setdefault(name, []).append(elapsed)
                if method == "POST":
                    self.api_job_ids.append(payload["id"])
            self.stop_api.wait(0.05)
        client.close()

    def wait_until_finished(self, deadline: float) -> int:
        from polling.models import FINISHED_STATUSES, PollingJob

        while True:
            close_old_connections()
            ids = self.job_ids + self.api_job_ids
            open_jobs = PollingJob.objects.filter(pk__in=ids).exclude(status__in=FINISHED_STATUSES).count()
            if open_jobs == 0 or time.monotonic() > deadline:
                return open_jobs
            self._all_alive()
            time.sleep(2)

    # --- the whole run ----------------------------------------------------------------------
    def run(self) -> dict:
        began = time.time()
        overflows = bench_report.listen_overflows()
        try:
            self.start_stack()
            self.setup_credentials()
            deadline = time.monotonic() + self.config["timeout"]
            api = threading.Thread(target=self.api_load, name="api-load", daemon=True)
            self.create_jobs()
            api.start()  # with every job stored
            unfinished = self.wait_until_finished(deadline)
            self.stop_api.set()
            api.join(timeout=120)
            # Let the last POSTed jobs finish too (they are few; bounded by the same deadline).
            unfinished = self.wait_until_finished(deadline)
            log(
                f"all jobs finished after {time.time() - began:.0f}s"
                if not unfinished
                else f"{unfinished} jobs unfinished at the deadline"
            )
            processes = [f for child in self.children for f in child.figures()]
            timings = self.fake.timings()
            return bench_report.build(
                config=self.config,
                jobs=self._job_rows(),
                timings=timings,
                api_samples=self.api_samples,
                api_errors=self.api_errors,
                processes=processes,
                run={
                    "webhooks": self._webhook_deliveries(timings),
                    "ramp_seconds": round(self.ramp_seconds, 1),
                    "create_seconds": round(self.create_seconds, 1),
                    "elapsed_seconds": round(time.time() - began, 1),
                    "unfinished_jobs": unfinished,
                    "listen_overflows": _since(overflows, bench_report.listen_overflows()),
                },
            )
        finally:
            self.stop_api.set()
            self.stop_stack()

    def run_soak(self) -> dict:
        """N jobs that stay active for `soak` minutes, jobs POSTed and triggered all along, the
        memory of every process sampled (bench/soak.py); nothing is waited for at the end."""
        from polling.models import PollingJob

        minutes = self.config["soak"]
        try:
            self.start_stack()
            self.setup_credentials()
            self.create_jobs()
            api = threading.Thread(target=self.api_load, name="api-load", daemon=True)
            api.start()
            pids = [child.pid for child in self.children if child.role != "fake servers"]
            began = time.monotonic()
            samples = [bench_soak.sample(pids, 0.0)]
            log(f"soak: {minutes} min, memory sampled every {bench_soak.SAMPLE_SECONDS:.0f}s")
            end = began + minutes * 60
            while time.monotonic() < end:
                time.sleep(min(bench_soak.SAMPLE_SECONDS, max(0.0, end - time.monotonic())))
                self._all_alive()
                samples.append(bench_soak.sample(pids, time.monotonic() - began))
                total = sum(samples[-1]["rss"].values())
                log(f"soak: minute {samples[-1]['t'] / 60:4.1f}, stack RSS {total:.1f} MB")
            self.stop_api.set()
            api.join(timeout=120)
            close_old_connections()
            api_jobs = PollingJob.objects.filter(pk__in=self.api_job_ids)
            timings = self.fake.timings()
            per_config: dict[str, int] = {}
            for kb in timings["keboola_jobs"]:
                per_config[kb["config"]] = per_config.get(kb["config"], 0) + 1
            (self.workdir / "soak-samples.json").write_text(json.dumps(samples))
            return {
                "config": self.config,
                "machine": bench_report.machine(),
                "memory": bench_soak.summarize(samples, self.config["soak_warmup"] * 60),
                "run": {
                    "openai_requests": sum(len(b["requests"]) for b in timings["batches"].values()),
                    "api_jobs": len(self.api_job_ids),
                    "api_jobs_triggered": api_jobs.exclude(keboola_job_id="").count(),
                    "keboola_duplicates": sum(1 for n in per_config.values() if n > 1),
                    "api_requests": sum(len(v) for v in self.api_samples.values()),
                    "api_errors": sum(self.api_errors.values()),
                },
            }
        finally:
            self.stop_api.set()
            self.stop_stack()

    def _webhook_deliveries(self, timings: dict) -> dict | None:
        """How many signed webhooks the fake sent, how many the web server accepted, how many
        it refused (any other answer; 429s counted apart; the throttle is the default), and how
        long after its batch turned terminal each delivery was answered."""
        if not self.config.get("webhooks"):
            return None
        sent = self.fake._call("GET", "webhooks")["sent"]
        accepted = sum(1 for d in sent if d["status"] == 200)
        answered = [
            d["time"] - terminal
            for d in sent
            if (terminal := timings["batches"].get(d["event"]["data"]["id"], {}).get("terminal_at"))
        ]
        return {
            "sent": len(sent),
            "accepted": accepted,
            "refused": len(sent) - accepted,
            "refused_429": sum(1 for d in sent if d["status"] == 429),
            "answered_after_terminal_seconds": bench_report.summary(answered, points=(50, 95)),
        }

    def _job_rows(self) -> list[dict]:
        from polling.models import JobBatch, PollingJob

        close_old_connections()
        ids = self.job_ids + self.api_job_ids
        rows = {
            row["id"]: {**row, "batch_ids": []}
            for row in PollingJob.objects.filter(pk__in=ids).values(
                "id", "name", "status", "created_at", "keboola_job_id", "keboola_configuration_id"
            )
        }
        recorded: dict[int, float] = {}
        batches = JobBatch.objects.filter(job_id__in=ids).values_list("job_id", "batch_id", "updated_at")
        for job_id, batch_id, updated_at in batches:
            rows[job_id]["batch_ids"].append(batch_id)
            # A finished batch's last change is its end, as a read (or a confirmation) recorded it.
            recorded[job_id] = max(recorded.get(job_id, 0.0), updated_at.timestamp())
        for row in rows.values():
            row["created_at"] = row["created_at"].timestamp()
            row["recorded_at"] = recorded.get(row["id"])
        return list(rows.values())


def _since(before: int | None, after: int | None) -> int | None:
    return None if before is None or after is None else after - before


def main() -> None:
    workdir = Path(sys.argv[1])
    driver = Driver(workdir)
    report = driver.run_soak() if driver.config.get("soak") else driver.run()
    (workdir / "report.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
