"""The jobs admin: list, add and change through the services, actions, read-only logs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from polling.models import BatchStatus, JobStatus, PollingJob, PollingLog, ServiceHeartbeat
from polling.tests.factories import PollingJobFactory, PollingLogFactory
from secrets_vault.tests.factories import KeboolaSecretFactory, OpenAISecretFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:polling_pollingjob_changelist")
ADD = reverse("admin:polling_pollingjob_add")
LOGS = reverse("admin:polling_pollinglog_changelist")
STACK = "https://connection.eu-central-1.keboola.com"


def change_url(job: PollingJob) -> str:
    return reverse("admin:polling_pollingjob_change", args=[job.pk])


@pytest.fixture
def browser(client, admin_user):
    client.force_login(admin_user)
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def job_with_progress(completed: int, total: int, **kwargs) -> PollingJob:
    job = PollingJobFactory(batch_ids=[f"batch_{i}" for i in range(total)], **kwargs)
    for batch in job.batches.order_by("id")[:completed]:
        batch.status = BatchStatus.COMPLETED
        batch.save()
    return job


# --- list ------------------------------------------------------------------------------------


def test_list_shows_batch_progress(browser):
    job_with_progress(3, 5, name="Multi-batch processing")
    html = browser.get(CHANGELIST).content.decode()
    assert "Multi-batch processing" in html
    assert "3/5 completed" in html


def test_list_makes_a_fixed_number_of_queries(browser, django_assert_max_num_queries):
    for i in range(20):
        job_with_progress(i % 3, 3)
    with django_assert_max_num_queries(8):
        response = browser.get(CHANGELIST)
    assert response.status_code == 200


def test_list_filters_by_status_and_searches_names_and_batch_ids(browser):
    job_with_progress(0, 2, name="alpha")
    PollingJobFactory(name="beta", status=JobStatus.PAUSED, batch_ids=["batch_needle", "batch_other"])
    html = browser.get(f"{CHANGELIST}?status__exact=paused").content.decode()
    assert "beta" in html and "alpha" not in html
    html = browser.get(f"{CHANGELIST}?q=needle").content.decode()
    assert "beta" in html and "alpha" not in html
    assert "0/2 completed" in html  # counts stay right when the search joins batches
    assert "alpha" in browser.get(f"{CHANGELIST}?q=alph").content.decode()


# --- add -------------------------------------------------------------------------------------


def test_add_page_offers_secrets_of_the_right_type_only(browser):
    OpenAISecretFactory(name="openai-prod")
    KeboolaSecretFactory(name="keboola-prod")
    html = browser.get(ADD).content.decode()
    openai_select = html.split('name="openai_secret_id"')[1].split("</select>")[0]
    keboola_select = html.split('name="keboola_secret_id"')[1].split("</select>")[0]
    assert "openai-prod" in openai_select and "keboola-prod" not in openai_select
    assert "keboola-prod" in keboola_select and "openai-prod" not in keboola_select
    assert 'name="batch_ids"' in html


def add_data(**overrides) -> dict:
    openai = OpenAISecretFactory()
    keboola = KeboolaSecretFactory()
    return {
        "name": "From the admin",
        "batch_ids": "batch_abc123\r\n  batch_def456\r\n\r\n",
        "openai_secret_id": openai.pk,
        "keboola_secret_id": keboola.pk,
        "keboola_stack_url": STACK,
        "keboola_component_id": "kds-team.app-custom-python",
        "keboola_configuration_id": "123456",
        "poll_interval_seconds": 120,
        **overrides,
    }


def test_add_creates_the_job_through_the_service(browser, dispatch):
    response = browser.post(ADD, add_data())
    assert response.status_code == 302, response.content.decode()[:2000]
    job = PollingJob.objects.get()
    assert job.name == "From the admin"
    assert list(job.batches.values_list("batch_id", flat=True)) == ["batch_abc123", "batch_def456"]
    assert dispatch() == [job.pk]  # due at once
    assert job.logs.filter(status="created").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"batch_ids": ""}, "At least one batch ID is required"),
        ({"batch_ids": "batch_1\nbatch_1"}, "Duplicate batch IDs found. Each batch ID must be unique."),
        (
            {"batch_ids": "abc123"},
            "Invalid batch ID format: &#x27;abc123&#x27; (must start with &#x27;batch_&#x27;)",
        ),
        ({"keboola_stack_url": "https://example.com"}, "Keboola stack URL must look like"),
        ({"poll_interval_seconds": 0}, "Poll interval must be between"),
    ],
)
def test_add_shows_the_service_messages_on_the_form(browser, overrides, message):
    response = browser.post(ADD, add_data(**overrides))
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not PollingJob.objects.exists()


def test_add_refuses_a_secret_of_the_wrong_type(browser):
    data = add_data()
    data["openai_secret_id"] = data["keboola_secret_id"]
    response = browser.post(ADD, data)
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not PollingJob.objects.exists()


# --- change ----------------------------------------------------------------------------------


def change_data(job: PollingJob, **overrides) -> dict:
    batches = list(job.batches.order_by("id"))
    data = {
        "name": job.name,
        "keboola_stack_url": job.keboola_stack_url,
        "keboola_component_id": job.keboola_component_id,
        "keboola_configuration_id": job.keboola_configuration_id,
        "poll_interval_seconds": job.poll_interval_seconds,
        "batches-TOTAL_FORMS": len(batches),
        "batches-INITIAL_FORMS": len(batches),
        "batches-MIN_NUM_FORMS": 0,
        "batches-MAX_NUM_FORMS": 1000,
        **overrides,
    }
    for i, batch in enumerate(batches):
        data[f"batches-{i}-id"] = batch.pk
        data[f"batches-{i}-job"] = job.pk
    return data


def test_change_page_shows_batches_state_and_recent_logs(browser):
    job = job_with_progress(1, 2, keboola_job_id="98765", last_error="OpenAI said no")
    for i in range(25):
        PollingLogFactory(job=job, message=f"log entry {i:02d}")
    html = browser.get(change_url(job)).content.decode()
    assert "batch_0" in html and "batch_1" in html
    assert "1/2 completed" in html
    assert "98765" in html and "OpenAI said no" in html
    assert "log entry 24" in html and "log entry 05" in html
    assert "log entry 04" not in html  # the 20 newest only
    assert f"{LOGS}?job={job.pk}" in html
    assert 'name="batches-0-status"' not in html  # batch statuses are read-only
    assert job.openai_secret.name in html


def test_change_goes_through_the_service(browser):
    checked = timezone.now() - timedelta(seconds=60)
    job = PollingJobFactory(name="old", poll_interval_seconds=120, last_check_at=checked)
    response = browser.post(change_url(job), change_data(job, name="new", poll_interval_seconds=300))
    assert response.status_code == 302, response.content.decode()[:3000]
    job.refresh_from_db()
    assert (job.name, job.poll_interval_seconds) == ("new", 300)
    assert job.logs.filter(status="updated").exists()
    assert job.next_check_at == checked + timedelta(seconds=300)  # rescheduled


def test_change_shows_validation_errors_and_writes_nothing(browser):
    job = PollingJobFactory(name="old")
    response = browser.post(change_url(job), change_data(job, name="new", keboola_component_id="has space"))
    assert response.status_code == 200
    assert "Component ID must not contain white space" in response.content.decode()
    job.refresh_from_db()
    assert job.name == "old"


def test_delete_goes_through_the_service(browser, dispatch):
    job = PollingJobFactory()
    PollingLogFactory(job=job)
    confirm = browser.get(reverse("admin:polling_pollingjob_delete", args=[job.pk]))
    assert confirm.status_code == 200 and "Are you sure" in confirm.content.decode()
    response = browser.post(reverse("admin:polling_pollingjob_delete", args=[job.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not PollingJob.objects.exists()
    assert not PollingLog.objects.exists()
    assert dispatch() == []


# --- actions ---------------------------------------------------------------------------------


def act(browser, action: str, *jobs: PollingJob):
    return browser.post(CHANGELIST, {"action": action, "_selected_action": [j.pk for j in jobs]})


def test_pause_and_resume_actions_report_conflicts(browser):
    active = PollingJobFactory()
    done = PollingJobFactory(status=JobStatus.COMPLETED)
    response = act(browser, "pause_jobs", active, done)
    assert response.status_code == 302
    active.refresh_from_db()
    assert active.status == JobStatus.PAUSED
    msgs = messages_of(response)
    assert "1 job paused." in msgs
    assert any(f"Job {done.pk} is completed; only an active job can be paused." in m for m in msgs)

    response = act(browser, "resume_jobs", active)
    active.refresh_from_db()
    assert active.status == JobStatus.ACTIVE
    assert "1 job resumed." in messages_of(response)


def test_check_now_action(browser, django_capture_on_commit_callbacks, monkeypatch):
    queued = []
    monkeypatch.setattr(
        "polling.tasks.poll_job.apply_async", lambda args, kwargs: queued.append((args, kwargs))
    )
    active = PollingJobFactory()
    paused = PollingJobFactory(status=JobStatus.PAUSED)
    with django_capture_on_commit_callbacks(execute=True):
        response = act(browser, "check_now", active, paused)
    assert [(args, kwargs["force"]) for args, kwargs in queued] == [([active.pk], True)]
    msgs = messages_of(response)
    assert "1 job queued for an immediate check." in msgs
    assert any("only an active job can be checked" in m for m in msgs)


# --- logs and heartbeats are read-only -------------------------------------------------------


def test_logs_are_listed_filtered_searched_and_read_only(browser):
    job = PollingJobFactory(name="the-job")
    other = PollingJobFactory()
    entry = PollingLogFactory(job=job, level="error", status="failed", message="needle in the log")
    PollingLogFactory(job=other, message="something else")
    assert "needle in the log" in browser.get(LOGS).content.decode()
    html = browser.get(f"{LOGS}?level__exact=error").content.decode()
    assert "needle" in html and "something else" not in html
    assert "something else" not in browser.get(f"{LOGS}?q=needle").content.decode()
    html = browser.get(f"{LOGS}?job={job.pk}").content.decode()
    assert "needle" in html and "something else" not in html
    assert browser.get(reverse("admin:polling_pollinglog_add")).status_code == 403
    detail = browser.get(reverse("admin:polling_pollinglog_change", args=[entry.pk]))
    assert detail.status_code == 200
    assert 'name="_save"' not in detail.content.decode()


def test_heartbeats_are_listed_read_only(browser):
    ServiceHeartbeat.objects.create(name="beat", kind="beat", hostname="host-1")
    html = browser.get(reverse("admin:polling_serviceheartbeat_changelist")).content.decode()
    assert "host-1" in html
    assert browser.get(reverse("admin:polling_serviceheartbeat_add")).status_code == 403
