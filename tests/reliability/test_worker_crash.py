"""`kill -9` of a Celery worker while it polls and while it triggers: nothing lost, nothing twice."""

import signal
import time

import pytest

from polling.models import PollingJob, PollingLog, TriggerState
from polling.tests.stack import wait_for
from tests.reliability.harness import (
    assert_exactly_once,
    assert_no_canary_leaked,
    fault_run,
    finish_batches,
    fresh,
    record_metrics,
    wait_first_checks,
    wait_until_finished,
)

pytestmark = [pytest.mark.slow, pytest.mark.serial, pytest.mark.django_db(transaction=True)]


def _held_leases(fleet) -> int:
    return fresh(PollingJob.objects.filter(pk__in=fleet.job_ids)).exclude(lease_token="").count()


def _sending(fleet) -> int:
    return fresh(PollingJob.objects.filter(pk__in=fleet.job_ids, trigger_state=TriggerState.SENDING)).count()


def test_worker_killed_while_polling_loses_no_job(fake_openai_settings, request):
    fake = fake_openai_settings
    with fault_run(request, fake, workers=1) as (stack, fleet):
        wait_first_checks(fleet)
        # Every OpenAI answer now takes a second: the workers are always mid-request.
        fake.fail("openai.retrieve", "slow", seconds=5, delay=1.0)
        wait_for(lambda: _held_leases(fleet) >= 2, timeout=10, message="polls in flight")
        stack.stop("worker1", signal.SIGKILL)
        killed_at = time.monotonic()
        stranded = _held_leases(fleet)
        stack.start_worker(3)  # the supervisor starts a replacement
        finish_batches(fleet)
        wait_until_finished(fleet, stack, timeout=90)
        finished_after = time.monotonic() - killed_at

    assert stranded >= 1, "the kill did not land while a poll was in flight"
    assert_exactly_once(fleet)
    assert_no_canary_leaked(fleet, request.node.name)
    record_metrics(
        request.node.name,
        jobs=len(fleet.job_ids),
        leases_held_right_after_kill=stranded,
        seconds_to_finish_after_kill=round(finished_after, 1),
        seconds_total=fleet.seconds,
    )


def test_worker_killed_while_triggering_never_triggers_twice(fake_openai_settings, request):
    fake = fake_openai_settings
    # Keboola takes 1.5 s to answer (within the 2 s timeout). The fake creates the job whether
    # or not the worker lives to read the answer, as Keboola would.
    fake.fail("keboola.create", "slow", seconds=600, delay=1.5)
    with fault_run(request, fake, workers=1) as (stack, fleet):
        wait_first_checks(fleet)
        finish_batches(fleet)
        wait_for(lambda: _sending(fleet) >= 2, timeout=30, message="triggers in flight")
        stack.stop("worker1", signal.SIGKILL)
        killed_at = time.monotonic()
        in_flight = _sending(fleet)
        fake.clear_faults()
        stack.start_worker(3)
        wait_until_finished(fleet, stack, timeout=120)
        finished_after = time.monotonic() - killed_at

    # One worker ran, so every trigger still `sending` right after the kill was that worker's.
    assert in_flight >= 1, "the kill did not land while a trigger was in flight"
    assert_exactly_once(fleet)
    logs = fresh(PollingLog.objects.filter(job_id__in=fleet.job_ids))
    adopted = logs.filter(status="triggered", message__contains="found after an unconfirmed request").count()
    resent = logs.filter(status="trigger_retry").count()
    assert adopted + resent >= in_flight, "a trigger in flight at the kill was not reconciled"
    assert_no_canary_leaked(fleet, request.node.name)
    record_metrics(
        request.node.name,
        jobs=len(fleet.job_ids),
        triggers_sending_right_after_kill=in_flight,
        adopted_after_lookup=adopted,
        resent_after_lookup=resent,
        keboola_create_requests=len(fake.requests("keboola.create")),
        keboola_jobs=len(fake.keboola_jobs()),
        seconds_to_finish_after_kill=round(finished_after, 1),
        seconds_total=fleet.seconds,
    )
