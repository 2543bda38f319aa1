"""Following the Keboola job to its end (polling/services/follow.py)."""

import time

import pytest
from django.utils import timezone

from polling.models import JobStatus, PollingJob, PollingLog
from polling.services.follow import keboola_follow_due
from polling.tests.factories import triggered_job

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("outcome, level", [("success", "info"), ("error", "error")])
def test_keboola_job_is_followed_until_it_finishes(fake_openai_settings, outcome, level):
    fake = fake_openai_settings
    fake.configure_keboola(start_after=0.2, finish_after=0.4, outcome=outcome)
    job = triggered_job(fake)
    assert job.keboola_job_status == "created" and job.keboola_next_follow_at is not None
    time.sleep(0.5)
    PollingJob.objects.filter(pk=job.pk).update(keboola_next_follow_at=timezone.now())

    assert keboola_follow_due() == 1
    job.refresh_from_db()
    assert job.keboola_job_status == outcome and job.keboola_job_finished_at is not None
    assert job.keboola_next_follow_at is None
    assert job.status == JobStatus.COMPLETED  # the trigger itself succeeded
    assert PollingLog.objects.filter(job=job, status="keboola_finished", level=level).exists()
    assert keboola_follow_due() == 0  # nothing more to follow


def test_a_running_keboola_job_is_checked_again_later(fake_openai_settings):
    fake = fake_openai_settings
    fake.configure_keboola(start_after=0, finish_after=3600)
    job = triggered_job(fake)
    PollingJob.objects.filter(pk=job.pk).update(keboola_next_follow_at=timezone.now())
    keboola_follow_due()
    job.refresh_from_db()
    assert job.keboola_job_status == "processing" and job.keboola_next_follow_at > timezone.now()


def test_a_keboola_job_is_followed_by_one_worker_at_a_time(fake_openai_settings):
    from datetime import timedelta

    from polling.services.follow import keboola_follow

    fake = fake_openai_settings
    fake.configure_keboola(start_after=0, finish_after=3600)
    job = triggered_job(fake)
    now = timezone.now()
    PollingJob.objects.filter(pk=job.pk).update(
        keboola_next_follow_at=now, lease_token="other-follower", lease_expires_at=now + timedelta(seconds=60)
    )
    assert keboola_follow_due() == 0 and keboola_follow(job_id=job.pk) is False
    assert fake.requests("keboola.get") == []
    # The other follower died: once its lease lapses the job is followed again, and released.
    PollingJob.objects.filter(pk=job.pk).update(lease_expires_at=now - timedelta(seconds=1))
    assert keboola_follow_due() == 1
    job.refresh_from_db()
    assert len(fake.requests("keboola.get")) == 1
    assert job.lease_token == "" and job.keboola_next_follow_at > timezone.now()


def test_a_failed_look_up_backs_off_and_releases_the_job(fake_openai_settings):
    fake = fake_openai_settings
    job = triggered_job(fake)
    fake.fail("keboola.get", "500", times=1)
    PollingJob.objects.filter(pk=job.pk).update(keboola_next_follow_at=timezone.now())
    before = timezone.now()
    assert keboola_follow_due() == 1
    job.refresh_from_db()
    assert job.keboola_follow_failures == 1 and job.lease_token == ""
    delay = (job.keboola_next_follow_at - before).total_seconds()
    assert 30 * 0.8 - 1 <= delay <= 30 * 1.2 + 1
