from datetime import timedelta

import pytest
from django.utils import timezone

from polling.models import PollingLog
from polling.services.health import liveness
from polling.tasks import poll_job, prune_logs, worker_heartbeat
from polling.tests.factories import PollingJobFactory, PollingLogFactory

pytestmark = pytest.mark.django_db


def test_prune_logs_deletes_only_entries_past_retention(settings):
    settings.LOG_RETENTION_DAYS = 30
    old = PollingLogFactory()
    PollingLog.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    recent = PollingLogFactory()
    assert prune_logs() == 1
    assert list(PollingLog.objects.values_list("id", flat=True)) == [recent.pk]


def test_worker_heartbeat_shows_in_liveness():
    assert liveness()["worker"]["alive"] is False
    worker_heartbeat()
    state = liveness()
    assert state["worker"]["alive"] is True and state["worker"]["count"] == 1


def test_poll_task_skips_a_missing_job():
    assert poll_job(424242) == "skipped"


def test_poll_task_skips_a_job_not_due():
    job = PollingJobFactory(next_check_at=timezone.now() + timedelta(hours=1))
    assert poll_job(job.pk) == "skipped"
