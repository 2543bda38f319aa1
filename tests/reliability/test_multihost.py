"""Two worker machines on one PostgreSQL and one Redis; one of them dies mid-run.

Each "host" is a network namespace with a host name of its own (tests/reliability/hosts.py),
reaching the services over a veth pair, and runs what a worker machine runs with compose: the
polling worker and beat (`worker_argv`, `beat_argv`). 500 jobs are polled and triggered by both;
every process of the host whose beat is active is then SIGKILLed, mid-trigger.
"""

import re
import time
from datetime import datetime
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection

from polling.models import JobStatus, PollingJob, PollingLog, ServiceHeartbeat, TriggerState
from polling.tests.stack import ARTIFACTS, process_env, wait_for
from teckochecker.management.commands.start import beat_argv, worker_argv
from tests.reliability.harness import (
    FAST_ENV,
    assert_exactly_once,
    finish_batches,
    fresh,
    make_fleet,
    record_metrics,
    require_service,
    wait_until_finished,
)
from tests.reliability.hosts import WorkerHosts, netns_problem, via

# serial: it asserts that takeovers happen within the lease times, which a loaded machine (the
# parallel phase runs four test processes on two cores) would stretch.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.serial,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(600),  # about 70 s alone on 2 cores; several minutes on a crowded machine
]

JOBS = 500
POLL_LEASE = 5
DISPATCH_LEASE = 6
BEAT_LEASE = 5  # HEARTBEAT_STALE_SECONDS: how long a silent beat keeps its lease
# Scheduling on 2 shared cores: a due job waits up to a dispatch tick, then in the queue.
MARGIN = 15
ACTIVE = "beat is active on this host"
STANDS_BY = "beat stands by"


def _log_time(line: str) -> float:
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def _lines(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line and re.match(r"\d{4}-\d\d-\d\d ", line)]


class Hosts:
    """The `WorkerHosts` of this test with their processes started."""

    def __init__(self, hosts: WorkerHosts, env: dict[str, str], fake_port: int):
        self.all, self.env, self.fake_port = hosts, env, fake_port

    def start(self) -> None:
        for host in self.all.hosts:
            self.all.forward_loopback(host, self.fake_port)
            env = {
                **self.env,
                "DATABASE_URL": via(self.env["DATABASE_URL"], host.address),
                "CELERY_BROKER_URL": via(self.env["CELERY_BROKER_URL"], host.address),
                "OPENAI_BASE_URL": f"http://{host.address}:{self.fake_port}/v1",
                "DATA_DIR": str(host.data_dir),
            }
            host.run("worker", worker_argv(concurrency=8), env)
            host.run("beat", beat_argv(), env)


def test_two_worker_hosts_share_the_jobs_and_one_takes_over_when_the_other_dies(
    fake_openai_settings, request, tmp_path
):
    if connection.vendor != "postgresql" or not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip(
            "runs in the PostgreSQL + Redis configuration: worker machines share a database and a "
            "broker server, which SQLite and the file broker are not"
        )
    problem = netns_problem()
    require_service(problem is None, problem or "")
    fake = fake_openai_settings
    started = time.monotonic()
    fleet = make_fleet(fake, tag="multihost", count=JOBS)
    created_in = time.monotonic() - started

    def say(what: str) -> None:  # the phases, for a failure's output
        print(f"[{time.monotonic() - started:5.1f} s] {what}", flush=True)

    say(f"{JOBS} jobs created")
    # Keboola answers after 1 s (within the 2 s timeout): triggers are in flight at the kill.
    fake.fail("keboola.create", "slow", seconds=600, delay=1.0)

    fake_port = urlsplit(fake.url).port
    ports = [connection.settings_dict.get("PORT") or 5432, urlsplit(settings.CELERY_BROKER_URL).port or 6379]
    env = process_env(
        **{
            **FAST_ENV,
            "POLL_LEASE_SECONDS": str(POLL_LEASE),
            "DISPATCH_LEASE_SECONDS": str(DISPATCH_LEASE),
            "HEARTBEAT_STALE_SECONDS": str(BEAT_LEASE),
        }
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("tcmh*"):
        old.unlink()
    with WorkerHosts(2, ports=[*map(int, ports), fake_port], base_dir=tmp_path, log_dir=ARTIFACTS) as hosts:
        Hosts(hosts, env, fake_port).start()
        say("hosts started")
        first, second = hosts.hosts
        try:
            # Every batch is done: each job's first check triggers it.
            finish_batches(fleet)
            done = (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_FAILURES)

            def finished() -> int:
                return fresh(PollingJob.objects.filter(pk__in=fleet.job_ids, status__in=done)).count()

            wait_for(lambda: finished() >= JOBS // 5, timeout=120, message="a fifth of the jobs to finish")
            leader_name = fresh(ServiceHeartbeat.objects.filter(name="beat")).get().hostname
            leader = next(h for h in hosts.hosts if h.hostname == leader_name)
            survivor = second if leader is first else first
            both_worked = [hosts.accepted(h, fake_port) for h in hosts.hosts]
            say(f"a fifth finished; killing {leader.hostname}, whose beat is active")
            killed_wall = time.time()
            leader.kill()
            killed_at = time.monotonic()
            fake.clear_faults()
            # Every job leased right then: the dead host's checks and triggers in flight and the
            # jobs dispatched to it (their messages died in its prefetch buffer), and the
            # survivor's own. Each must be claimed again (or finished) within the leases.
            leased = dict(
                fresh(PollingJob.objects.filter(pk__in=fleet.job_ids).exclude(lease_token="")).values_list(
                    "pk", "lease_token"
                )
            )
            finished_at_kill = finished()
            sending_at_kill = fresh(
                PollingJob.objects.filter(pk__in=fleet.job_ids, trigger_state=TriggerState.SENDING)
            ).count()

            def still_held() -> list:
                rows = fresh(PollingJob.objects.filter(pk__in=leased)).values_list(
                    "pk", "lease_token", "status", "trigger_state", "lease_expires_at"
                )
                return [row for row in rows if row[1] == leased[row[0]]]

            try:
                wait_for(
                    lambda: not still_held(),
                    timeout=60,
                    interval=0.2,
                    message="the jobs leased at the kill to be claimed again",
                )
            except AssertionError:
                print("still on their lease of the kill:", still_held()[:10])
                raise
            jobs_taken_over_in = time.monotonic() - killed_at
            say(f"{len(leased)} jobs leased at the kill claimed again")
            wait_for(
                lambda: (
                    fresh(ServiceHeartbeat.objects.filter(name="beat")).get().hostname == survivor.hostname
                ),
                timeout=60,
                interval=0.2,
                message="the survivor's beat to take over",
            )
            beat_taken_over_in = time.monotonic() - killed_at
            say("beat taken over")

            wait_until_finished(fleet, _Logs(hosts), timeout=240)
            finished_in = time.monotonic() - killed_at
            say("all finished")
        except BaseException:
            for host in hosts.hosts:
                for role in ("worker", "beat"):
                    print(f"--- {host.hostname} {role} ---\n", host.log(role)[-3000:])
            raise
        beat_logs = {h.hostname: h.log("beat") for h in hosts.hosts}

    assert all(both_worked), f"a host did no work before the kill: {both_worked} connections to the fakes"
    assert 0 < finished_at_kill < JOBS, "the kill did not land mid-run"
    assert leased, "no job was leased when the host died"
    assert_exactly_once(fleet)
    logs = fresh(PollingLog.objects.filter(job_id__in=fleet.job_ids))

    # One beat at a time: the leader was active from its start and never stood by; the
    # survivor stood by from its start and became active once, after the kill.
    leader_log, survivor_log = beat_logs[leader.hostname], beat_logs[survivor.hostname]
    assert len(_lines(leader_log, ACTIVE)) == 1 and not _lines(leader_log, STANDS_BY), leader_log[-2000:]
    assert len(_lines(survivor_log, STANDS_BY)) == 1, survivor_log[-2000:]
    became_active = _lines(survivor_log, ACTIVE)
    assert len(became_active) == 1, survivor_log[-2000:]
    assert _log_time(became_active[0]) >= killed_wall - 0.01, "two beats were active at once"

    # A dead holder's leases lapse after POLL_LEASE (DISPATCH_LEASE for a dispatched job), the
    # beat lease after BEAT_LEASE; the margin is the dispatch tick and the queue on 2 cores.
    assert jobs_taken_over_in <= max(POLL_LEASE, DISPATCH_LEASE) + MARGIN
    assert beat_taken_over_in <= BEAT_LEASE + MARGIN
    record_metrics(
        request.node.name,
        jobs=JOBS,
        seconds_to_create=round(created_in, 1),
        jobs_leased_at_the_kill=len(leased),
        jobs_finished_before_the_kill=finished_at_kill,
        seconds_until_the_leased_jobs_were_claimed_again=round(jobs_taken_over_in, 1),
        seconds_until_its_beat_was_taken_over=round(beat_taken_over_in, 1),
        seconds_to_finish_after_kill=round(finished_in, 1),
        seconds_total=round(time.monotonic() - started, 1),
        triggers_sending_at_the_kill=sending_at_kill,
        adopted_after_lookup=logs.filter(status="triggered", message__contains="unconfirmed request").count(),
        resent_after_lookup=logs.filter(status="trigger_retry").count(),
        keboola_create_requests=len(fake.requests("keboola.create")),
    )


class _Logs:
    """What `wait_until_finished` prints on a timeout: the survivors' process logs."""

    def __init__(self, hosts: WorkerHosts):
        self.procs = {f"{h.hostname}:{role}": (h, role) for h in hosts.hosts for role in h.procs}

    def log(self, name: str) -> str:
        host, role = self.procs[name]
        return host.log(role)
