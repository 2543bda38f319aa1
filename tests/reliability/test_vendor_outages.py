"""OpenAI and Keboola misbehaving for a while: back off, recover, trigger exactly once.

The fault windows are seconds, not the minute of the issue, so the folder stays under five
minutes; backoff starts at the poll interval (3 s here), so a 12 s window already spans three
rounds of it.
"""

import time
from collections import defaultdict

import pytest

from fakes import FakeServer
from polling.models import PollingJob, PollingLog
from tests.reliability.harness import (
    POLL_INTERVAL,
    assert_exactly_once,
    assert_no_canary_leaked,
    fault_run,
    finish_batches,
    fresh,
    max_rate,
    record_metrics,
    wait_first_checks,
    wait_until_finished,
)

pytestmark = [pytest.mark.slow, pytest.mark.serial, pytest.mark.django_db(transaction=True)]

RETRY_AFTER = 5


def _times_by(requests, key):
    out = defaultdict(list)
    for r in requests:
        out[key(r)].append(r["time"])
    return out


def test_openai_429_and_500_back_off_and_every_job_still_finishes(fake_openai_settings, request):
    fake = fake_openai_settings
    with fault_run(request, fake) as (stack, fleet):
        wait_first_checks(fleet)
        time.sleep(2 * POLL_INTERVAL)  # steady state: every batch checked every interval
        start = time.time()
        # Both ways of reading batches fail: single reads and the sweeps' list pages.
        for route in ("openai.retrieve", "openai.list"):
            fake.fail(route, "429", seconds=6, retry_after=RETRY_AFTER)
            fake.fail(route, "500", seconds=12)
        time.sleep(12)
        end = time.time()
        finish_batches(fleet)
        wait_until_finished(fleet, stack, timeout=90)
        recovered = time.time() - end

    lists = fake.requests("openai.list")
    requests = fake.requests("openai.retrieve")
    times = sorted([r["time"] for r in requests] + [r["time"] for r in lists])
    baseline = len([t for t in times if start - 2 * POLL_INTERVAL <= t < start]) / (2 * POLL_INTERVAL)
    in_fault = [t for t in times if start <= t <= end]
    peak = max_rate(times, start, end)
    # Checks are dispatched in groups, so compare peaks with peaks, not with the average.
    peak_before = max_rate(times, start - 2 * POLL_INTERVAL, start)
    second_half = len([t for t in in_fault if t >= start + 6]) / 6
    per_batch = _times_by([r for r in requests if start <= r["time"] <= end], lambda r: r["target"])
    most_per_batch = max(len(v) for v in per_batch.values())
    # After a 429 with Retry-After: 5, the same batch is not asked again for 5 seconds (by a
    # single read; a list page serves many jobs, and its batches are not in the request).
    gaps = []
    for batch_times in _times_by(requests, lambda r: r["target"]).values():
        batch_times.sort()
        for first, second in zip(batch_times, batch_times[1:], strict=False):
            if start <= first < start + 6 - 0.5:
                gaps.append(second - first)

    histogram = [len([t for t in times if start + s <= t < start + s + 1]) for s in range(-6, 24)]
    record_metrics(
        request.node.name,
        jobs=len(fleet.job_ids),
        batches=len(fleet.all_batch_ids),
        fault_window_seconds=round(end - start, 1),
        requests_per_second_before_fault=round(baseline, 1),
        max_requests_per_second_in_fault=peak,
        max_requests_per_second_before_fault=peak_before,
        requests_per_second_in_second_half_of_fault=round(second_half, 1),
        requests_in_fault=len(in_fault),
        requests_per_second_from_6s_before_fault=histogram,
        most_requests_per_batch_in_fault=most_per_batch,
        min_gap_after_429_seconds=round(min(gaps), 2),
        seconds_to_finish_after_recovery=round(recovered, 1),
        seconds_total=fleet.seconds,
    )
    assert_exactly_once(fleet)
    assert min(gaps) >= RETRY_AFTER - 0.2, f"Retry-After not honoured: a retry after {min(gaps):.2f}s"
    # Without backoff each batch would be asked every 3 s, 4-5 times in the 12 s window.
    assert most_per_batch <= 3, f"a batch was asked {most_per_batch} times during the outage"
    # Never more than normal operation: the peak before the fault, or one check per batch per interval.
    normal = max(peak_before * 1.5, len(fleet.all_batch_ids) / POLL_INTERVAL)
    assert peak <= normal, f"retry storm: {peak}/s against a peak of {peak_before}/s before"
    warned = fresh(PollingLog.objects.filter(job_id__in=fleet.job_ids, status="openai_error")).count()
    assert warned >= len(fleet.job_ids), "each job logs its backoff"
    assert not fresh(PollingJob.objects.filter(pk__in=fleet.job_ids, consecutive_failures__gt=0)).exists()
    assert_no_canary_leaked(fleet, request.node.name)


def test_keboola_outage_retries_with_backoff_and_triggers_once_or_fails_with_reason(
    fake_openai_settings, request
):
    fake = fake_openai_settings
    dead = FakeServer().start()  # a second Keboola stack that never recovers
    dead.fail("keboola.create", "429", seconds=600, retry_after=1)
    try:
        with fault_run(
            request, fake, TRIGGER_MAX_ATTEMPTS="5", POLL_MAX_BACKOFF_SECONDS="3", KEBOOLA_TIMEOUT_SECONDS="1"
        ) as (stack, fleet):
            doomed = fleet.job_ids[::4]  # a quarter of the jobs use the dead stack
            PollingJob.objects.filter(pk__in=doomed).update(keboola_stack_url=dead.stack_url)
            wait_first_checks(fleet)
            start = time.time()
            # Keboola down for 9 s: rate limited, then failing, then cutting connections.
            fake.fail("keboola.create", "429", seconds=3, retry_after=1)
            fake.fail("keboola.create", "500", seconds=6)
            fake.fail("keboola.create", "reset", seconds=9)
            finish_batches(fleet)
            wait_until_finished(fleet, stack, timeout=120)
            finished = time.time() - start
    finally:
        dead.stop()

    assert_exactly_once(fleet, must_fail=set(doomed))
    assert not dead.keboola_jobs()
    reasons = set(fresh(PollingJob.objects.filter(pk__in=doomed)).values_list("last_error", flat=True))
    assert all("after 5 attempts" in r and "429" in r for r in reasons), reasons
    creates = fake.requests("keboola.create")
    by_config = _times_by(creates, lambda r: r["body"]["config"])
    retried = {c: sorted(t) for c, t in by_config.items() if len(t) > 1}
    gaps = [b - a for t in retried.values() for a, b in zip(t, t[1:], strict=False)]
    dead_attempts = _times_by(dead.requests("keboola.create"), lambda r: r["body"]["config"])
    dead_gaps = [
        b - a for t in dead_attempts.values() for a, b in zip(sorted(t), sorted(t)[1:], strict=False)
    ]
    assert retried, "no trigger was retried: the outage missed"
    assert min(gaps) >= 2.4 - 0.2, f"retried after {min(gaps):.2f}s: no backoff"
    assert all(len(t) == 5 for t in dead_attempts.values()), "each doomed job tries exactly its budget"
    assert_no_canary_leaked(fleet, request.node.name)
    record_metrics(
        request.node.name,
        jobs=len(fleet.job_ids),
        jobs_on_the_dead_stack=len(doomed),
        fault_window_seconds=9,
        keboola_create_requests=len(creates),
        keboola_jobs=len(fake.keboola_jobs()),
        jobs_retried=len(retried),
        most_attempts_for_one_job=max(len(t) for t in by_config.values()),
        min_gap_between_attempts_seconds=round(min(gaps), 2),
        max_create_requests_per_second_in_fault=max_rate([r["time"] for r in creates], start, start + 9),
        dead_stack_attempts_per_job=sorted({len(t) for t in dead_attempts.values()}),
        dead_stack_gap_seconds=[round(min(dead_gaps), 1), round(max(dead_gaps), 1)],
        seconds_to_finish_after_fault_start=round(finished, 1),
        seconds_total=fleet.seconds,
    )
