"""The one lease, due check and backoff every worker-side service uses (polling/services/leases.py)."""

from datetime import timedelta

import pytest
from django.db.models import Q
from django.utils import timezone

from polling.models import PollingJob
from polling.services.leases import (
    backoff_seconds,
    due,
    is_due,
    lease_claim,
    lease_free,
    lease_held,
    lease_release,
    lease_release_each,
    lease_renew,
    lease_token_new,
)
from polling.tests.factories import PollingJobFactory

pytestmark = pytest.mark.django_db


def _held(token="other", seconds=60):
    return {"lease_token": token, "lease_expires_at": timezone.now() + timedelta(seconds=seconds)}


def test_a_claim_takes_free_and_lapsed_rows_and_never_held_ones():
    now = timezone.now()
    free = PollingJobFactory()
    lapsed = PollingJobFactory(**_held("dead-worker", seconds=-1))
    held = PollingJobFactory(**_held("live-worker"))

    token, claimed = lease_claim(PollingJob.objects.all(), seconds=30, now=now)

    assert claimed == 2 and len(token) == 32
    assert set(PollingJob.objects.filter(lease_token=token).values_list("pk", flat=True)) == {
        free.pk,
        lapsed.pk,
    }
    free.refresh_from_db()
    assert free.lease_expires_at == now + timedelta(seconds=30)
    held.refresh_from_db()
    assert held.lease_token == "live-worker"
    # Everything is held now: a second claimant gets nothing.
    assert lease_claim(PollingJob.objects.all(), seconds=30, now=now)[1] == 0


def test_take_over_claims_rows_a_holder_hands_on():
    handed_on = PollingJobFactory(**_held("d:dispatch"))
    PollingJobFactory(**_held("someone"))
    token, claimed = lease_claim(
        PollingJob.objects.all(), seconds=30, now=timezone.now(), take_over=Q(lease_token="d:dispatch")
    )
    assert claimed == 1 and PollingJob.objects.get(lease_token=token) == handed_on


def test_a_claim_writes_the_state_change_that_goes_with_it_only_to_the_rows_it_wins():
    now = timezone.now()
    free = PollingJobFactory(last_error="")
    held = PollingJobFactory(last_error="", **_held())
    token, claimed = lease_claim(
        PollingJob.objects.all(), seconds=30, now=now, last_error="claimed", last_check_at=now
    )
    assert claimed == 1
    free.refresh_from_db(), held.refresh_from_db()
    assert (free.lease_token, free.last_error, free.last_check_at) == (token, "claimed", now)
    assert (held.last_error, held.last_check_at) == ("", None)


def test_a_token_carries_its_prefix_and_fits_the_column():
    token = lease_token_new(prefix="d:")
    assert token.startswith("d:") and len(token) == 32 and token != lease_token_new(prefix="d:")
    assert ":" not in lease_token_new()


def test_release_needs_the_token_and_writes_the_fields_with_it():
    job = PollingJobFactory()
    token, _ = lease_claim(PollingJob.objects.filter(pk=job.pk), seconds=30, now=timezone.now())

    assert lease_release(job, token="not-mine", last_error="x") == 0
    job.refresh_from_db()
    assert job.lease_token == token and job.last_error == ""

    assert lease_release(job, token=token, last_error="released") == 1
    job.refresh_from_db()
    assert (job.lease_token, job.lease_expires_at, job.last_error) == ("", None, "released")
    assert lease_release(job, token=token) == 0  # released once only


def test_a_holder_renews_its_lease_and_learns_when_it_lost_it():
    now = timezone.now()
    job = PollingJobFactory()
    token, _ = lease_claim(PollingJob.objects.filter(pk=job.pk), seconds=30, now=now)
    later = now + timedelta(seconds=25)

    assert lease_renew(job, token=token, seconds=30, now=later, last_error="progress") == 1
    job.refresh_from_db()
    assert job.lease_token == token and job.lease_expires_at == later + timedelta(seconds=30)
    assert job.last_error == "progress"
    # A condition on the rows (a cancel request, here: the status) stops the renewal too.
    PollingJob.objects.filter(pk=job.pk).update(status="paused")
    assert (
        lease_renew(PollingJob.objects.filter(pk=job.pk, status="active"), token=token, seconds=30, now=later)
        == 0
    )
    PollingJob.objects.filter(pk=job.pk).update(status="active")
    # The lease lapsed and another worker took the row: renewing tells the old holder to stop.
    assert lease_claim(PollingJob.objects.all(), seconds=30, now=later + timedelta(minutes=1))[1] == 1
    assert lease_renew(job, token=token, seconds=30, now=later + timedelta(minutes=1)) == 0


def test_release_each_writes_each_rows_values_and_skips_rows_no_longer_ours():
    now = timezone.now()
    a, b, taken = PollingJobFactory(), PollingJobFactory(), PollingJobFactory()
    token, _ = lease_claim(PollingJob.objects.all(), seconds=30, now=now)
    PollingJob.objects.filter(pk=taken.pk).update(lease_token="new-holder")  # our lease lapsed

    lease_release_each(
        PollingJob,
        token=token,
        changes={
            a.pk: {"next_check_at": now + timedelta(seconds=10), "consecutive_failures": 0},
            b.pk: {"next_check_at": now + timedelta(seconds=20), "consecutive_failures": 0},
            taken.pk: {"next_check_at": now, "consecutive_failures": 0},
        },
    )

    a.refresh_from_db(), b.refresh_from_db(), taken.refresh_from_db()
    assert (a.lease_token, a.lease_expires_at, a.next_check_at) == ("", None, now + timedelta(seconds=10))
    assert (b.lease_token, b.next_check_at) == ("", now + timedelta(seconds=20))
    assert taken.lease_token == "new-holder" and taken.next_check_at != now
    lease_release_each(PollingJob, token=token, changes={})  # nothing to do, no error


def test_free_and_held_split_the_rows():
    now = timezone.now()
    free = PollingJobFactory()
    lapsed = PollingJobFactory(**_held(seconds=-1))
    held = PollingJobFactory(**_held())
    assert set(PollingJob.objects.filter(lease_free(now))) == {free, lapsed}
    assert list(PollingJob.objects.filter(lease_held(now))) == [held]


def test_due_in_the_database_and_in_memory_agree():
    now = timezone.now()
    jobs = {
        "undated": PollingJobFactory(next_check_at=None),
        "past": PollingJobFactory(next_check_at=now - timedelta(seconds=1)),
        "now": PollingJobFactory(next_check_at=now),
        "future": PollingJobFactory(next_check_at=now + timedelta(seconds=1)),
    }
    in_db = set(PollingJob.objects.filter(due("next_check_at", now)).values_list("pk", flat=True))
    in_memory = {job.pk for job in jobs.values() if is_due(job.next_check_at, now)}
    assert in_db == in_memory == {jobs["undated"].pk, jobs["past"].pk, jobs["now"].pk}


def test_backoff_doubles_within_its_jitter_up_to_the_cap():
    for failures, expected in [(1, 60), (2, 120), (3, 240), (6, 1800), (20, 1800)]:
        delays = [backoff_seconds(base=60, failures=failures, cap=1800) for _ in range(200)]
        assert expected * 0.8 <= min(delays) and max(delays) <= expected * 1.2, failures
        assert max(delays) - min(delays) > expected * 0.1  # spread, so failures do not retry together
    assert 0.8 * 60 <= backoff_seconds(base=60, failures=0, cap=1800) <= 1.2 * 60


def test_backoff_never_undercuts_retry_after():
    assert backoff_seconds(base=10, failures=1, cap=600, retry_after=900) == 900
    assert 8 <= backoff_seconds(base=10, failures=1, cap=600, retry_after=1) <= 12
    assert 8 <= backoff_seconds(base=10, failures=1, cap=600, retry_after=None) <= 12
