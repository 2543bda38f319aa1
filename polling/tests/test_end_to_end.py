"""The real thing: Celery worker and beat processes, the real broker, the fakes over HTTP."""

import json
import os

import pytest
from django.conf import settings
from django.db import connection

from polling.models import JobStatus, PollingJob
from polling.services import job_create
from polling.tests.stack import running_stack, wait_for
from secrets_vault.services import secret_create

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _fresh_statuses(ids):
    connection.close()  # see the workers' commits, not a stale snapshot
    return dict(PollingJob.objects.filter(pk__in=ids).values_list("id", "status"))


def test_job_created_through_the_api_triggers_keboola_once(fake_openai_settings, api, request):
    fake = fake_openai_settings
    for batch_id in ("batch_e2e_a", "batch_e2e_b", "batch_e2e_c"):
        fake.set_batch(batch_id, status="in_progress", completed=10, total=100)
    openai_id = api.post(
        "/api/admin/secrets", {"name": "o", "type": "openai", "value": "sk-e2e"}, format="json"
    )
    keboola_id = api.post(
        "/api/admin/secrets", {"name": "k", "type": "keboola", "value": "kbc-e2e"}, format="json"
    )

    with running_stack(request.node.name) as stack:
        response = api.post(
            "/api/jobs",
            {
                "name": "e2e",
                "batch_ids": ["batch_e2e_a", "batch_e2e_b", "batch_e2e_c"],
                "openai_secret_id": openai_id.json()["id"],
                "keboola_secret_id": keboola_id.json()["id"],
                "keboola_stack_url": fake.stack_url,
                "keboola_component_id": "kds-team.app-custom-python",
                "keboola_configuration_id": "777",
                "poll_interval_seconds": 2,
            },
            format="json",
        )
        assert response.status_code == 201
        job_id = response.json()["id"]
        # The first check happens at once (enqueued on create), not an interval later.
        wait_for(
            lambda: fake.openai_observations_per_batch().get("batch_e2e_a"), timeout=30, message="first check"
        )

        fake.set_batch("batch_e2e_a", status="completed")
        fake.set_batch("batch_e2e_b", status="completed")
        fake.set_batch("batch_e2e_c", status="failed")
        try:
            wait_for(
                lambda: _fresh_statuses([job_id])[job_id] == JobStatus.COMPLETED_WITH_FAILURES,
                timeout=45,
                message="job to finish",
            )
        except AssertionError:
            print(stack.log("worker1")[-4000:], stack.log("beat")[-3000:])
            raise

    created = fake.keboola_jobs()
    assert len(created) == 1
    assert created[0]["variables"] == {
        "batch_ids_completed": json.dumps(["batch_e2e_a", "batch_e2e_b"]),
        "batch_ids_failed": json.dumps(["batch_e2e_c"]),
        "batch_count_total": "3",
        "batch_count_completed": "2",
        "batch_count_failed": "1",
    }
    job = api.get(f"/api/jobs/{job_id}").json()
    assert job["keboola_job_id"] == created[0]["id"] and job["status"] == "completed_with_failures"


def test_two_workers_trigger_fifty_jobs_exactly_once(fake_openai_settings, request):
    fake = fake_openai_settings
    openai_secret = secret_create(name="o", type="openai", value="sk-many")
    keboola_secret = secret_create(name="k", type="keboola", value="kbc-many")
    ids, batch_total = [], 0
    for n in range(50):
        batch_ids = [f"batch_many_{n}_{i}" for i in range(1 + n % 3)]
        batch_total += len(batch_ids)
        for batch_id in batch_ids:
            fake.set_batch(batch_id, status="in_progress")
        job = job_create(
            name=f"many-{n}",
            batch_ids=batch_ids,
            openai_secret_id=openai_secret.pk,
            keboola_secret_id=keboola_secret.pk,
            keboola_stack_url=fake.stack_url,
            keboola_component_id="comp",
            keboola_configuration_id=f"cfg-{n}",
            poll_interval_seconds=2,
        )
        ids.append(job.pk)

    with running_stack(request.node.name, workers=2) as stack:
        wait_for(
            lambda: len(fake.openai_observations_per_batch()) == batch_total,
            timeout=60,
            message="first checks",
        )
        # Workers run at a lower CPU priority (WORKER_NICE), every thread of them, so the API wins.
        for role in ("worker1", "worker2"):
            pid = stack.procs[role].pid
            niceness = {os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir(f"/proc/{pid}/task")}
            assert niceness == {min(19, os.getpriority(os.PRIO_PROCESS, 0) + settings.WORKER_NICE)}
        for batch in fake.list_batches():  # every batch finishes at the same moment
            fake.set_batch(batch["id"], status="completed")
        try:
            wait_for(
                lambda: all(s == JobStatus.COMPLETED for s in _fresh_statuses(ids).values()),
                timeout=90,
                message="all 50 jobs to complete",
            )
        except AssertionError:
            print(stack.log("worker1")[-3000:], stack.log("worker2")[-3000:])
            raise

    created = fake.keboola_jobs()
    configs = sorted(j["config"] for j in created)
    assert len(created) == 50, f"expected 50 Keboola jobs, got {len(created)}"
    assert configs == sorted(f"cfg-{n}" for n in range(50))
    recorded = set(PollingJob.objects.filter(pk__in=ids).values_list("keboola_job_id", flat=True))
    assert recorded == {j["id"] for j in created}
