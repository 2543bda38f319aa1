"""What every fault test shares: a fleet of jobs, the exactly-once check, rates and canaries.

A fault test creates a few hundred jobs against the in-process fake (`make_fleet`), runs the real
worker and beat processes (`polling.tests.stack`), injects its fault, lets the batches finish and
ends with `assert_exactly_once` and `assert_no_canary_leaked`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from polling.models import FINISHED_STATUSES, JobBatch, JobStatus, PollingJob, PollingLog, TriggerState
from polling.services import job_create
from polling.tests.stack import ARTIFACTS, configuration_name, running_stack, wait_for
from secrets_vault.services import secret_create

JOBS = 200
POLL_INTERVAL = 3
# Short timeouts and lease so a crashed worker's claim, and an unconfirmed trigger, are resolved
# within seconds instead of minutes (production: 300 s lease, 2 * 30 s + 30 s reconcile grace).
FAST_ENV = {
    "MIN_POLL_INTERVAL": "1",
    "POLL_LEASE_SECONDS": "5",
    "KEBOOLA_TIMEOUT_SECONDS": "2",
    "OPENAI_TIMEOUT_SECONDS": "3",
    "TRIGGER_RECONCILE_MARGIN_SECONDS": "1",
    "CELERY_PREFETCH": "2",
    # A lost dispatched message (broker or database restart) delays its jobs this long.
    "DISPATCH_LEASE_SECONDS": "10",
}
METRICS_FILE = Path(settings.BASE_DIR) / "test-artifacts" / "reliability-metrics.json"


@dataclass
class Fleet:
    """The jobs of one fault test and the canary secret values they use."""

    fake: object
    job_ids: list[int]
    batch_ids: dict[int, list[str]]
    config_of: dict[int, str]
    canaries: list[str] = field(default_factory=list)

    @property
    def all_batch_ids(self) -> list[str]:
        return [b for ids in self.batch_ids.values() for b in ids]


def make_fleet(fake, *, tag: str, count: int = JOBS, poll_interval: int = POLL_INTERVAL) -> Fleet:
    """`count` active jobs with 1-2 batches each, all in progress, and canary secret values."""
    canaries = [f"CANARY-openai-{uuid.uuid4().hex}", f"CANARY-keboola-{uuid.uuid4().hex}"]
    openai_secret = secret_create(name=f"{tag}-openai", type="openai", value=canaries[0])
    keboola_secret = secret_create(name=f"{tag}-keboola", type="keboola", value=canaries[1])
    items = []
    plan = []
    for n in range(count):
        ids = [f"batch_{tag}_{n}_{i}" for i in range(1 + n % 2)]
        items += [{"id": b, "status": "in_progress", "total": 10} for b in ids]
        plan.append((n, ids))
    for item in items:
        fake.set_batch(item["id"], status="in_progress", total=10)
    job_ids, batch_ids, config_of = [], {}, {}
    for n, ids in plan:
        config = f"{tag}-cfg-{n}"
        job = job_create(
            name=f"{tag}-{n}",
            batch_ids=ids,
            openai_secret_id=openai_secret.pk,
            keboola_secret_id=keboola_secret.pk,
            keboola_stack_url=fake.stack_url,
            keboola_component_id="kds-team.app-custom-python",
            keboola_configuration_id=config,
            poll_interval_seconds=poll_interval,
        )
        job_ids.append(job.pk)
        batch_ids[job.pk] = ids
        config_of[job.pk] = config
    return Fleet(fake=fake, job_ids=job_ids, batch_ids=batch_ids, config_of=config_of, canaries=canaries)


@contextlib.contextmanager
def fault_run(request, fake, *, workers: int = 2, count: int = JOBS, **env: str):
    """Create the fleet, then start worker(s) and beat; yields (stack, fleet).

    The jobs are created first, on a quiet machine: with the stack already running each create
    also makes beat reload its schedule, which slows creation down several times on 2 cores.
    """
    name = request.node.name
    for old in ARTIFACTS.glob(f"{name}-*.log"):
        old.unlink()
    started = time.monotonic()
    fleet = make_fleet(fake, tag=name.removeprefix("test_")[:24].replace("_", "-"), count=count)
    fleet.seconds_to_create = round(time.monotonic() - started, 1)
    with running_stack(name, workers=workers, **{**FAST_ENV, **env}) as stack:
        yield stack, fleet
    fleet.seconds = round(time.monotonic() - started, 1)


def wait_first_checks(fleet: Fleet, timeout: float = 60) -> None:
    want = len(fleet.all_batch_ids)
    wait_for(
        lambda: len(fleet.fake.openai_observations_per_batch()) >= want,
        timeout=timeout,
        message="first checks",
    )


def finish_batches(fleet: Fleet, job_ids: list[int] | None = None) -> None:
    """Every batch of these jobs turns terminal now; the second batch of a job fails."""
    for job_id in job_ids or fleet.job_ids:
        for i, batch_id in enumerate(fleet.batch_ids[job_id]):
            fleet.fake.set_batch(batch_id, status="failed" if i == 1 else "completed")


def fresh(queryset):
    """Read what the worker processes committed, not a stale snapshot of this connection."""
    connection.close()
    return queryset


def status_counts(fleet: Fleet) -> Counter:
    return Counter(fresh(PollingJob.objects.filter(pk__in=fleet.job_ids)).values_list("status", flat=True))


def wait_until_finished(fleet: Fleet, stack, *, timeout: float, job_ids: list[int] | None = None) -> None:
    """Wait until every job (or every one of `job_ids`) is finished; on timeout show the logs."""
    ids = job_ids or fleet.job_ids

    def done() -> bool:
        statuses = fresh(PollingJob.objects.filter(pk__in=ids)).values_list("status", flat=True)
        return all(s in FINISHED_STATUSES for s in statuses)

    try:
        wait_for(done, timeout=timeout, interval=1, message=f"{len(ids)} jobs to finish")
    except AssertionError:
        print("statuses:", dict(status_counts(fleet)))
        for role in list(stack.procs):
            print(f"--- {role} ---\n", stack.log(role)[-3000:])
        raise


def assert_exactly_once(
    fleet: Fleet, *, may_fail: set[int] = frozenset(), must_fail: set[int] = frozenset()
) -> None:
    """The shared end check: nothing lost, nothing stuck, one Keboola job per finished job.

    Every job is finished (completed or completed with failures; `failed` only for ids in
    `may_fail` / `must_fail`, and then with its reason recorded and no Keboola job), every batch
    is terminal, no lease or trigger is left half-done, and the fake holds exactly one Keboola job
    per succeeded job - found both by configuration id and by the recorded keboola_job_id - and
    no other.
    """
    jobs = {j.pk: j for j in fresh(PollingJob.objects.filter(pk__in=fleet.job_ids))}
    assert set(jobs) == set(fleet.job_ids), "a job row disappeared"
    created = fleet.fake.keboola_jobs()
    per_config = Counter(j["config"] for j in created)
    by_id = {j["id"]: j for j in created}
    ours = set(fleet.config_of.values())
    strangers = [c for c in per_config if c not in ours]
    assert not strangers, f"Keboola jobs for unknown configurations: {strangers[:5]}"
    duplicates = {c: n for c, n in per_config.items() if n > 1}
    assert not duplicates, f"Keboola job created more than once: {duplicates}"

    problems = []
    for job_id, job in jobs.items():
        config = fleet.config_of[job_id]
        if job.status == JobStatus.FAILED and (job_id in may_fail or job_id in must_fail):
            if not job.last_error:
                problems.append(f"job {job_id} failed without a reason")
            if per_config.get(config):
                problems.append(f"job {job_id} failed but a Keboola job exists")
            continue
        if job_id in must_fail:
            problems.append(f"job {job_id} should have failed, is {job.status}")
            continue
        if job.status not in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_FAILURES):
            problems.append(f"job {job_id} is {job.status} ({job.trigger_state=}, {job.last_error=})")
            continue
        # A lease on a finished job is the Keboola follower's (its next look-up takes over one
        # whose holder died); any other would be a check or trigger left half-done.
        if job.trigger_state != TriggerState.DONE or (job.lease_token and job.keboola_next_follow_at is None):
            problems.append(f"job {job_id} finished with trigger_state={job.trigger_state!r}, lease held")
        if per_config.get(config) != 1:
            problems.append(f"job {job_id}: {per_config.get(config, 0)} Keboola jobs for {config}")
        recorded = by_id.get(job.keboola_job_id)
        if recorded is None or recorded["config"] != config:
            problems.append(f"job {job_id}: recorded Keboola job {job.keboola_job_id!r} is not its own")
        expected = (
            JobStatus.COMPLETED_WITH_FAILURES if len(fleet.batch_ids[job_id]) > 1 else JobStatus.COMPLETED
        )
        if job.status != expected:
            problems.append(f"job {job_id} is {job.status}, expected {expected}")
    pending = fresh(JobBatch.objects.filter(job_id__in=fleet.job_ids)).exclude(
        status__in=["completed", "failed", "expired", "cancelled"]
    )
    if pending.exists():
        problems.append(f"{pending.count()} batches are not terminal")
    assert not problems, f"{len(problems)} problems, first ones: {problems[:10]}"


def assert_no_canary_leaked(fleet: Fleet, stack_name: str, *extra_files: Path) -> None:
    """No secret value in the worker/beat/web logs of this test, nor in any job log or error."""
    files = [*sorted(ARTIFACTS.glob(f"{stack_name}-*.log")), *extra_files]
    assert files, "no process logs were written"
    for path in files:
        text = path.read_text(errors="replace")
        for canary in fleet.canaries:
            assert canary not in text, f"a secret value appears in {path.name}"
    for canary in fleet.canaries:
        assert not fresh(PollingLog.objects.filter(message__contains=canary)).exists()
        assert not PollingJob.objects.filter(last_error__contains=canary).exists()
    fingerprints_only = all(
        canary not in json.dumps(r) for r in fleet.fake.requests() for canary in fleet.canaries
    )
    assert fingerprints_only, "the fake recorded a secret value"


def max_rate(times: list[float], start: float, end: float, window: float = 1.0) -> float:
    """The most requests in any `window` seconds between `start` and `end`, per second."""
    inside = sorted(t for t in times if start <= t <= end)
    best, left = 0, 0
    for right, t in enumerate(inside):
        while inside[left] < t - window:
            left += 1
        best = max(best, right - left + 1)
    return best / window


def record_metrics(test: str, **numbers: object) -> None:
    """Keep the measured numbers of the last run (docs/RELIABILITY.md quotes them), one entry per
    test and configuration. The two configurations may run at once (CI), hence the lock."""
    METRICS_FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(METRICS_FILE.with_name(METRICS_FILE.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = json.loads(METRICS_FILE.read_text()) if METRICS_FILE.exists() else {}
        data[f"{test} [{configuration_name()}]"] = {
            "database": connection.vendor,
            "broker": settings.CELERY_BROKER_URL.split(":")[0],
            **numbers,
        }
        partial = METRICS_FILE.with_name(f"{METRICS_FILE.name}.{os.getpid()}")
        partial.write_text(json.dumps(data, indent=2, sort_keys=True))
        partial.replace(METRICS_FILE)
    print(f"\n{test}: {numbers}")


def require_service(available: bool, reason: str) -> None:
    """Skip when the configuration lacks the service; with REQUIRE_SERVICES=1 fail instead."""
    if available:
        return
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (REQUIRE_SERVICES=1)")
    pytest.skip(reason)
