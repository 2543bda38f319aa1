import json

import pytest
from django_celery_beat.models import PeriodicTask

from polling.models import JobStatus
from polling.services import job_delete, job_pause, job_resume, schedules_sync_all
from polling.services.schedules import schedule_name
from polling.tests.factories import PollingJobFactory

pytestmark = pytest.mark.django_db


def _tasks():
    return {t.name: t for t in PeriodicTask.objects.filter(name__startswith="teckochecker.poll-job.")}


def test_sync_creates_one_task_per_job_and_is_idempotent():
    active = PollingJobFactory(poll_interval_seconds=45)
    done = PollingJobFactory(status=JobStatus.COMPLETED)
    first = schedules_sync_all()
    assert first == {"jobs": 2, "changed": 2, "removed": 0}
    tasks = _tasks()
    assert set(tasks) == {schedule_name(active.pk), schedule_name(done.pk)}
    assert tasks[schedule_name(active.pk)].enabled and tasks[schedule_name(active.pk)].interval.every == 45
    assert json.loads(tasks[schedule_name(active.pk)].args) == [active.pk]
    assert not tasks[schedule_name(done.pk)].enabled
    assert schedules_sync_all() == {"jobs": 2, "changed": 0, "removed": 0}
    assert len(_tasks()) == 2


def test_sync_repairs_drift_and_removes_orphans():
    job = PollingJobFactory()
    schedules_sync_all()
    PeriodicTask.objects.filter(name=schedule_name(job.pk)).update(enabled=False)
    PeriodicTask.objects.create(
        name=schedule_name(999999),
        task="polling.tasks.poll_job",
        interval_id=PeriodicTask.objects.first().interval_id,
    )
    result = schedules_sync_all()
    assert result["changed"] == 1 and result["removed"] == 1
    assert _tasks()[schedule_name(job.pk)].enabled and len(_tasks()) == 1


def test_pause_resume_delete_keep_the_task_in_step():
    job = PollingJobFactory()
    schedules_sync_all()
    job_pause(job=job)
    assert not _tasks()[schedule_name(job.pk)].enabled
    job_resume(job=job)
    assert _tasks()[schedule_name(job.pk)].enabled
    job_delete(job=job)
    assert _tasks() == {}
