from datetime import timedelta

import pytest
from django.utils import timezone

from polling.models import JobBatch, JobStatus, PollingJob, PollingLog, TriggerState
from polling.tests.factories import PollingJobFactory, PollingLogFactory
from secrets_vault.tests.factories import KeboolaSecretFactory, OpenAISecretFactory

pytestmark = pytest.mark.django_db
URL = "/api/jobs"


@pytest.fixture
def secrets():
    return OpenAISecretFactory(), KeboolaSecretFactory()


@pytest.fixture
def body(secrets):
    openai_secret, keboola_secret = secrets
    return {
        "name": "Nightly",
        "batch_ids": ["batch_a1", "batch_b2", "batch_c3"],
        "openai_secret_id": openai_secret.pk,
        "keboola_secret_id": keboola_secret.pk,
        "keboola_stack_url": "https://connection.eu-central-1.keboola.com",
        "keboola_component_id": "kds-team.app-custom-python",
        "keboola_configuration_id": "123456",
        "poll_interval_seconds": 120,
    }


def test_create_returns_the_job_with_batches_and_schedule(api, body, dispatch):
    response = api.post(URL, body, format="json")
    assert response.status_code == 201, response.content
    job = response.json()
    assert job["status"] == "active"
    assert [b["batch_id"] for b in job["batches"]] == body["batch_ids"]
    assert job["batch_count"] == 3 and job["completed_count"] == 0 and job["failed_count"] == 0
    assert job["openai_secret_name"].startswith("openai-")
    assert job["created_at"].endswith("Z") or job["created_at"].endswith("+00:00")
    assert job["poll_interval_seconds"] == 120
    assert dispatch() == [job["id"]]  # due at once
    assert PollingLog.objects.filter(job_id=job["id"], status="created").exists()


def test_create_uses_the_default_interval(api, body, settings):
    body.pop("poll_interval_seconds")
    assert (
        api.post(URL, body, format="json").json()["poll_interval_seconds"] == settings.DEFAULT_POLL_INTERVAL
    )


@pytest.mark.parametrize(
    "batch_ids, message",
    [
        ([], "At least one batch ID is required"),
        ([f"batch_{i}" for i in range(11)], "Too many batch IDs: 11 (maximum: 10)"),
        (["batch_1", "batch_1"], "Duplicate batch IDs found. Each batch ID must be unique."),
        (["abc123"], "Invalid batch ID format: 'abc123' (must start with 'batch_')"),
        (["batch_test@job"], "Batch ID 'batch_test@job' contains invalid characters"),
        (["batch_tëst"], "Batch ID 'batch_tëst' contains invalid characters"),
        (["batch_" + "x" * 250], "exceeds 255 character limit"),
        (["batch_"], "Batch ID 'batch_' too short (must have content after 'batch_')"),
    ],
)
def test_batch_id_rules_give_the_user_guide_messages(api, body, batch_ids, message):
    body["batch_ids"] = batch_ids
    response = api.post(URL, body, format="json")
    assert response.status_code == 400
    assert any(message in m for m in response.json()["errors"]["batch_ids"])
    assert PollingJob.objects.count() == 0 and JobBatch.objects.count() == 0


def test_missing_batch_ids_is_the_same_message(api, body):
    body.pop("batch_ids")
    response = api.post(URL, body, format="json")
    assert response.json()["errors"]["batch_ids"] == ["At least one batch ID is required"]


@pytest.mark.parametrize(
    "field, value",
    [
        ("poll_interval_seconds", 5),
        ("poll_interval_seconds", 3601),
        ("keboola_stack_url", "http://connection.eu-central-1.keboola.com"),
        ("keboola_stack_url", "https://queue.eu-central-1.keboola.com"),
        ("keboola_stack_url", "not a url"),
        ("keboola_component_id", ""),
        ("keboola_configuration_id", "12 34"),
        ("name", "   "),
    ],
)
def test_invalid_fields_are_400_and_write_nothing(api, body, field, value, settings):
    settings.MIN_POLL_INTERVAL = 30
    body[field] = value
    response = api.post(URL, body, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert PollingJob.objects.count() == 0


def test_local_stack_url_needs_the_setting(api, body, settings):
    body["keboola_stack_url"] = "http://127.0.0.1:8001"
    settings.ALLOW_LOCAL_URLS = False
    assert api.post(URL, body, format="json").status_code == 400
    settings.ALLOW_LOCAL_URLS = True
    assert api.post(URL, body, format="json").status_code == 201


def test_secret_of_wrong_type_or_unknown_is_404(api, body, secrets):
    body["openai_secret_id"] = secrets[1].pk
    response = api.post(URL, body, format="json")
    assert response.status_code == 404 and "expected 'openai'" in response.json()["detail"]
    body["openai_secret_id"] = 987654
    assert api.post(URL, body, format="json").status_code == 404
    assert PollingJob.objects.count() == 0


def test_list_is_newest_first_with_filters_and_paging(api):
    old = PollingJobFactory(name="alpha", batch_ids=["batch_findme"])
    mid = PollingJobFactory(name="beta", status=JobStatus.PAUSED)
    new = PollingJobFactory(name="gamma")
    data = api.get(URL).json()
    assert [j["id"] for j in data["jobs"]] == [new.pk, mid.pk, old.pk] and data["total"] == 3
    assert [j["id"] for j in api.get(URL, {"status": "paused"}).json()["jobs"]] == [mid.pk]
    assert [j["id"] for j in api.get(URL, {"search": "findme"}).json()["jobs"]] == [old.pk]
    page = api.get(URL, {"limit": 1, "offset": 1}).json()
    assert [j["id"] for j in page["jobs"]] == [mid.pk] and page["total"] == 3
    assert api.get(URL, {"status": "bogus"}).status_code == 400
    assert api.get(URL, {"limit": "x"}).status_code == 400


def test_list_makes_a_fixed_number_of_queries(api, django_assert_max_num_queries):
    for _ in range(3):
        PollingJobFactory(batch_ids=["batch_1", "batch_2"])
    with django_assert_max_num_queries(8) as small:
        api.get(URL)
    for _ in range(20):
        PollingJobFactory(batch_ids=["batch_1", "batch_2", "batch_3"])
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert len(api.get(URL).json()["jobs"]) == 23


def test_detail_with_logs(api):
    job = PollingJobFactory()
    for _ in range(5):
        PollingLogFactory(job=job)
    data = api.get(f"{URL}/{job.pk}", {"include_logs": "true", "log_limit": 3}).json()
    assert len(data["logs"]) == 3 and set(data["logs"][0]) >= {
        "id",
        "job_id",
        "status",
        "message",
        "created_at",
    }
    assert "logs" not in api.get(f"{URL}/{job.pk}").json()
    assert api.get(f"{URL}/{job.pk}", {"log_limit": 501}).status_code == 400
    assert api.get(f"{URL}/424242").status_code == 404


def test_update_changes_fields_and_reschedules(api, dispatch):
    checked = timezone.now() - timedelta(seconds=200)
    job = PollingJobFactory(last_check_at=checked, next_check_at=checked + timedelta(seconds=120))
    assert dispatch() == [job.pk]  # due under the old interval of 120 s
    PollingJob.objects.filter(pk=job.pk).update(lease_token="", lease_expires_at=None)
    response = api.put(f"{URL}/{job.pk}", {"name": "renamed", "poll_interval_seconds": 300}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "renamed"
    job.refresh_from_db()
    assert job.next_check_at == checked + timedelta(seconds=300)
    assert dispatch() == []  # not due any more under the new one


def test_update_rejects_null_and_bad_values(api, settings):
    settings.MIN_POLL_INTERVAL = 30
    job = PollingJobFactory()
    assert api.put(f"{URL}/{job.pk}", {"name": None}, format="json").status_code == 400
    assert api.put(f"{URL}/{job.pk}", {"poll_interval_seconds": 1}, format="json").status_code == 400
    assert api.put(f"{URL}/{job.pk}", ["x"], format="json").status_code == 400
    assert api.put(f"{URL}/99999", {"name": "x"}, format="json").status_code == 404
    job.refresh_from_db()
    assert job.name.startswith("job-")


def test_pause_and_resume(api, dispatch):
    job = PollingJobFactory()
    response = api.post(f"{URL}/{job.pk}/pause")
    assert response.status_code == 200 and response.json()["status"] == "paused"
    assert dispatch() == []
    assert api.post(f"{URL}/{job.pk}/pause").status_code == 409
    response = api.post(f"{URL}/{job.pk}/resume")
    assert response.status_code == 200 and response.json()["status"] == "active"
    assert dispatch() == [job.pk]
    assert api.post(f"{URL}/{job.pk}/resume").status_code == 409
    assert api.post(f"{URL}/4242/pause").status_code == 404


def test_pause_is_refused_while_triggering(api):
    job = PollingJobFactory(trigger_state=TriggerState.SENDING)
    response = api.post(f"{URL}/{job.pk}/pause")
    assert response.status_code == 409 and "triggering" in response.json()["detail"]


def test_pause_rejects_a_completed_job(api):
    job = PollingJobFactory(status=JobStatus.COMPLETED)
    assert api.post(f"{URL}/{job.pk}/pause").status_code == 409


def test_delete_removes_job_batches_logs_and_schedule(api, body, dispatch):
    job_id = api.post(URL, body, format="json").json()["id"]
    response = api.delete(f"{URL}/{job_id}")
    assert response.json() == {"message": "Job 'Nightly' deleted successfully", "success": True}
    assert (
        not PollingJob.objects.exists() and not JobBatch.objects.exists() and not PollingLog.objects.exists()
    )
    assert dispatch() == []
    assert api.delete(f"{URL}/{job_id}").status_code == 404


def test_job_logs_and_global_logs(api):
    job = PollingJobFactory()
    other = PollingJobFactory()
    PollingLogFactory(job=job, level="error", message="boom")
    PollingLogFactory(job=other, message="fine")
    page = api.get(f"{URL}/{job.pk}/logs").json()
    assert page["total"] == 1 and page["logs"][0]["message"] == "boom"
    assert [e["message"] for e in api.get("/api/logs", {"level": "error"}).json()["logs"]] == ["boom"]
    assert [e["message"] for e in api.get("/api/logs", {"job": other.pk}).json()["logs"]] == ["fine"]
    assert api.get("/api/logs", {"level": "loud"}).status_code == 400


def test_stats_add_up(api):
    for status in JobStatus.values:
        PollingJobFactory(status=status)
    PollingJobFactory()
    stats = api.get("/api/stats").json()
    per_status = sum(stats[f"{s}_jobs"] for s in JobStatus.values)
    assert stats["total_jobs"] == 6 == per_status
    assert stats["active_jobs"] == 2 and stats["total_secrets"] == 12


def test_health_is_public(anon):
    response = anon.get("/api/health")
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "healthy" and data["database"] == "connected" and data["version"]
    assert set(data) >= {"broker", "worker", "scheduler", "timestamp"}


def test_jobs_need_staff(anon, client, django_user_model):
    assert anon.get(URL).status_code == 401
    user = django_user_model.objects.create_user(username="joe", password="pw-long-enough-123")
    client.force_login(user)
    assert client.get(URL).status_code == 403


def test_session_writes_need_csrf(admin_user, body):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.get(URL).status_code == 200
    response = client.post(URL, body, content_type="application/json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]


def test_schema_documents_every_endpoint(api):
    schema = api.get("/api/schema", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in [
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/pause",
        "/api/admin/secrets",
        "/api/health",
    ]:
        assert path in paths
    assert not any(p.endswith("/") for p in paths)


def test_throttling_answers_429_with_retry_after(api, monkeypatch):
    from django.core.cache import cache
    from rest_framework.throttling import SimpleRateThrottle

    cache.clear()
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "2/minute", "anon": "2/minute"})
    assert [api.get(URL).status_code for _ in range(2)] == [200, 200]
    response = api.get(URL)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0 and "throttled" in response.json()["detail"].lower()
    cache.clear()
