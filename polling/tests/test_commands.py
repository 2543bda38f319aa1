"""`manage.py job|status|doctor|sync_schedules` through call_command, and a few real processes."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from polling.models import BatchStatus, JobBatch, JobStatus, PollingJob, PollingLog, ServiceHeartbeat
from polling.tests.factories import PollingJobFactory, PollingLogFactory
from secrets_vault.tests.factories import KeboolaSecretFactory, OpenAISecretFactory
from tests.manage_process import ManageProcesses

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
STACK = "https://connection.eu-central-1.keboola.com"


def run(command: str, *args, stdin: str | None = None) -> str:
    out = io.StringIO()
    extra = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    call_command(command, *args, stdout=out, stderr=io.StringIO(), **extra)
    return out.getvalue()


def fails(command: str, *args, stdin: str | None = None) -> str:
    with pytest.raises(CommandError) as exc:
        run(command, *args, stdin=stdin)
    return str(exc.value)


@pytest.fixture
def secrets():
    return OpenAISecretFactory(name="openai-prod"), KeboolaSecretFactory(name="keboola-prod")


def create_args(*batch_ids: str, **overrides: str) -> list[str]:
    options = {
        "--name": "Batch processing job",
        "--openai-secret": "openai-prod",
        "--keboola-secret": "keboola-prod",
        "--keboola-stack": STACK,
        "--component-id": "kds-team.app-custom-python",
        "--config-id": "123456",
        **overrides,
    }
    args = ["create"]
    for batch_id in batch_ids:
        args += ["--batch-id", batch_id]
    for key, value in options.items():
        args += [key, value]
    return args


# --- job create ------------------------------------------------------------------------------


def test_create_prints_the_guide_line_and_stores_the_job(secrets, settings):
    out = run("job", *create_args("batch_abc123", "batch_def456"), "--poll-interval", "120")
    job = PollingJob.objects.get()
    assert out.strip() == f"✓ Polling job 'Batch processing job' created successfully (ID: {job.pk})"
    assert list(job.batches.values_list("batch_id", flat=True)) == ["batch_abc123", "batch_def456"]
    assert (job.openai_secret, job.keboola_secret) == secrets
    assert job.poll_interval_seconds == 120
    assert job.next_check_at <= timezone.now()  # due at once: the dispatcher sends it


def test_create_uses_the_default_poll_interval(secrets, settings):
    settings.DEFAULT_POLL_INTERVAL = 77
    run("job", *create_args("batch_abc123"))
    assert PollingJob.objects.get().poll_interval_seconds == 77


@pytest.mark.parametrize(
    ("batch_ids", "message"),
    [
        ([], "At least one batch ID is required"),
        ([f"batch_{i}" for i in range(1, 12)], "Too many batch IDs: 11 (maximum: 10)"),
        (["batch_123", "batch_123"], "Duplicate batch IDs found. Each batch ID must be unique."),
        (["abc123"], "Invalid batch ID format: 'abc123' (must start with 'batch_')"),
        (["batch_test@job"], "Batch ID 'batch_test@job' contains invalid characters"),
        (["batch_test job"], "Batch ID 'batch_test job' contains invalid characters"),
        (["batch_tëst"], "Batch ID 'batch_tëst' contains invalid characters"),
        (["batch_"], "Batch ID 'batch_' too short (must have content after 'batch_')"),
    ],
)
def test_create_reports_the_guides_batch_id_errors(secrets, batch_ids, message):
    assert fails("job", *create_args(*batch_ids)) == message
    assert not PollingJob.objects.exists()


def test_create_reports_an_overlong_batch_id(secrets):
    assert fails("job", *create_args("batch_" + "a" * 250)).endswith("exceeds 255 character limit")


def test_create_batch_errors_come_before_unknown_secrets(secrets):
    assert fails("job", *create_args(**{"--openai-secret": "test"})) == "At least one batch ID is required"


def test_create_rejects_an_unknown_secret_name(secrets):
    assert fails("job", *create_args("batch_1", **{"--keboola-secret": "nope"})) == "Secret 'nope' not found."


def test_create_rejects_a_secret_of_the_wrong_type(secrets):
    message = fails("job", *create_args("batch_1", **{"--openai-secret": "keboola-prod"}))
    assert message == "Secret 'keboola-prod' is of type 'keboola', expected 'openai'."
    assert not PollingJob.objects.exists()


def test_create_reports_every_bad_field_on_one_line(secrets):
    message = fails(
        "job",
        *create_args("batch_1", **{"--name": " ", "--component-id": "a b"}),
        "--poll-interval",
        "0",
    )
    assert "\n" not in message
    assert "Name must not be empty." in message
    assert "Component ID must not contain white space" in message
    assert "Poll interval must be between" in message


def test_create_rejects_a_non_numeric_interval(secrets):
    assert "--poll-interval: must be a whole number (got 'soon')" in fails(
        "job", *create_args("batch_1"), "--poll-interval", "soon"
    )


# --- job list / show -------------------------------------------------------------------------


def make_multi_batch_job(**kwargs) -> PollingJob:
    job = PollingJobFactory(
        name="Multi-batch processing",
        batch_ids=["batch_abc123", "batch_def456", "batch_ghi789", "batch_jkl012", "batch_mno345"],
        **kwargs,
    )
    statuses = [BatchStatus.COMPLETED] * 3 + [BatchStatus.IN_PROGRESS, BatchStatus.VALIDATING]
    for batch, status in zip(job.batches.order_by("id"), statuses, strict=True):
        batch.status = status
        batch.save()
    return job


def test_list_shows_batch_progress_and_status_icons():
    job = make_multi_batch_job(last_check_at=timezone.now())
    out = run("job", "list")
    assert "Polling Jobs" in out
    for header in ("ID", "Name", "Status", "Batches", "Interval", "Last Check", "Next Check"):
        assert header in out
    line = next(line for line in out.splitlines() if "Multi-batch processing" in line)
    assert f"│ {job.pk} " in line
    assert "🟢 active" in line
    assert "3/5 completed" in line
    assert "120s" in line
    assert timezone.localtime(job.last_check_at).strftime("%Y-%m-%d %H:%M:%S") in line


def test_list_times_follow_the_configured_time_zone(settings):
    settings.TIME_ZONE = "Europe/Prague"
    job = PollingJobFactory(last_check_at=datetime(2025, 1, 22, 9, 15, tzinfo=UTC))
    assert job.pk
    assert "2025-01-22 10:15:00" in run("job", "list")


def test_list_filters_by_status():
    PollingJobFactory(name="running-one")
    PollingJobFactory(name="finished-one", status=JobStatus.COMPLETED)
    out = run("job", "list", "--status", "completed")
    assert "finished-one" in out
    assert "running-one" not in out
    assert "No paused polling jobs found." in run("job", "list", "--status", "paused")
    assert "invalid choice: 'done'" in fails("job", "list", "--status", "done")


def test_list_json_parses():
    job = make_multi_batch_job()
    data = json.loads(run("job", "list", "--json"))
    assert data["total"] == 1
    assert data["jobs"][0]["id"] == job.pk
    assert data["jobs"][0]["completed_count"] == 3
    assert data["jobs"][0]["batch_count"] == 5


def test_show_details_batches_and_recent_logs():
    job = make_multi_batch_job(
        keboola_job_id="98765",
        keboola_job_url="https://connection.eu-central-1.keboola.com/jobs/98765",
        last_error="OpenAI said no",
    )
    JobBatch.objects.filter(job=job, batch_id="batch_jkl012").update(request_total=100, request_completed=95)
    JobBatch.objects.filter(job=job, batch_id="batch_ghi789").update(status=BatchStatus.EXPIRED)
    for i in range(12):
        PollingLogFactory(
            job=job, message=f"log entry {i:02d}", created_at=timezone.now() + timedelta(seconds=i)
        )

    out = run("job", "show", str(job.pk))

    assert "Polling Job Details" in out
    assert "🟢 active" in out
    assert "2/5 completed, 1 failed" in out
    assert "120 seconds" in out
    assert "98765" in out and "/jobs/98765" in out
    assert "OpenAI said no" in out
    assert "✓ completed" in out
    assert "✗ expired" in out
    assert "⏳ in_progress" in out
    assert "🔄 validating" in out
    assert "95/100" in out
    assert "log entry 11" in out and "log entry 02" in out
    assert "log entry 01" not in out  # only the 10 newest


def test_show_json_has_batches_and_logs():
    job = make_multi_batch_job()
    PollingLogFactory(job=job, message="hello")
    data = json.loads(run("job", "show", str(job.pk), "--json"))
    assert data["id"] == job.pk
    assert len(data["batches"]) == 5
    assert data["logs"][0]["message"] == "hello"


@pytest.mark.parametrize("action", ["show", "pause", "resume", "delete", "update"])
def test_ids_must_be_positive_whole_numbers(action):
    assert "ID must be a positive whole number (got 'abc')" in fails("job", action, "abc")


def test_show_an_unknown_job():
    assert fails("job", "show", "999999") == "Job 999999 not found."


# --- job update / pause / resume / delete ----------------------------------------------------


def test_update_changes_the_given_fields():
    job = PollingJobFactory(name="old")
    out = run("job", "update", str(job.pk), "--name", "new", "--poll-interval", "300", "--config-id", "42")
    assert out.strip() == "✓ Job 'new' updated"
    job.refresh_from_db()
    assert (job.name, job.poll_interval_seconds, job.keboola_configuration_id) == ("new", 300, "42")


def test_update_validates_like_the_api():
    job = PollingJobFactory(name="old")
    assert fails("job", "update", str(job.pk), "--keboola-stack", "https://example.com").startswith(
        "Keboola stack URL must look like"
    )
    assert fails("job", "update", str(job.pk)).startswith("Nothing to update")
    job.refresh_from_db()
    assert job.name == "old"


def test_pause_and_resume():
    job = PollingJobFactory(name="Batch processing job")
    assert run("job", "pause", str(job.pk)).strip() == "✓ Job 'Batch processing job' has been paused"
    assert fails("job", "pause", str(job.pk)) == f"Job {job.pk} is paused; only an active job can be paused."
    assert run("job", "resume", str(job.pk)).strip() == "✓ Job 'Batch processing job' has been resumed"
    job.refresh_from_db()
    assert job.status == JobStatus.ACTIVE
    assert fails("job", "resume", str(job.pk)) == f"Job {job.pk} is active; only a paused job can be resumed."


def test_delete_declined_deletes_nothing():
    job = PollingJobFactory(name="keep me")
    message = fails("job", "delete", str(job.pk), stdin="n\n")
    assert message.startswith("Not confirmed")
    assert PollingJob.objects.filter(pk=job.pk).exists()


def test_delete_confirmed_and_forced():
    first, second = PollingJobFactory(), PollingJobFactory()
    out = run("job", "delete", str(first.pk), stdin="y\n")
    assert "Are you sure you want to delete job" in out
    assert "✓ Job deleted successfully" in out
    assert run("job", "delete", str(second.pk), "--force").strip() == "✓ Job deleted successfully"
    assert not PollingJob.objects.exists()
    assert not PollingLog.objects.exists()


# --- status, doctor, sync_schedules ----------------------------------------------------------


def beat(kind: str, age: int = 0) -> None:
    seen = timezone.now() - timedelta(seconds=age)
    ServiceHeartbeat.objects.create(
        name=kind if kind == "beat" else f"worker:{kind}",
        kind="beat" if kind == "beat" else "worker",
        last_seen=seen,
        started_at=seen - timedelta(hours=2, minutes=15),
    )


def test_status_shows_the_guides_table():
    PollingJobFactory()
    PollingJobFactory(status=JobStatus.COMPLETED)
    beat("beat")
    beat("host1")
    out = run("status")
    assert "System Status" in out
    assert "🟢 Running" in out
    assert "2 hours 15 minutes" in out
    assert "Active Jobs" in out and "Completed Jobs" in out and "Failed Jobs" in out
    assert "Connected (" in out
    assert "API Server" in out


def test_status_json_parses_and_sees_a_dead_worker():
    beat("beat")
    beat("host1", age=3600)
    PollingJobFactory(status=JobStatus.FAILED)
    data = json.loads(run("status", "--json"))
    assert data["service"] == "degraded"
    assert data["worker"]["alive"] is False
    assert data["scheduler"]["alive"] is True
    assert data["jobs"]["failed_jobs"] == 1
    assert data["database"]["status"] == "connected"


@pytest.fixture
def listening_port():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server.getsockname()[1]
    server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_doctor_passes_when_everything_is_in_place(settings, listening_port):
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{listening_port}/v1"
    job = PollingJobFactory()
    call_command("sync_schedules", stdout=io.StringIO())
    beat("beat")
    beat("host1")
    out = run("doctor")
    assert "✓ Database" in out
    assert "✓ Migrations: all applied." in out
    assert "✓ FERNET_KEYS" in out
    assert "✓ Schedules: in step with 1 job(s)." in out
    assert "✓ Worker" in out and "✓ Scheduler" in out
    assert f"✓ OpenAI: 127.0.0.1:{listening_port} reachable." in out
    assert "All checks passed." in out
    assert job.pk


def test_doctor_fails_with_exit_1_and_names_the_failed_checks(settings):
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{closed_port()}/v1"
    PollingJobFactory(next_check_at=None)  # active, but the dispatcher would never see it
    out = io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command("doctor", stdout=out)
    text = out.getvalue()
    assert "✗ Schedules: 1 active job(s) without a due time" in text
    assert "✗ Worker: no fresh heartbeat" in text
    assert "✗ OpenAI: 127.0.0.1:" in text
    assert str(exc.value).startswith("4 of ")
    assert "Schedules, Worker, Scheduler, OpenAI" in str(exc.value)


def test_doctor_names_secrets_no_key_decrypts(settings):
    from cryptography.fernet import Fernet

    OpenAISecretFactory(name="from-the-old-key")
    settings.FERNET_KEYS = [Fernet.generate_key().decode()]
    from polling.management.commands.doctor import Command

    check = Command().check_keys()
    assert not check.ok
    assert "from-the-old-key" in check.detail


def test_doctor_warns_about_debug(settings):
    from polling.management.commands.doctor import Command

    settings.DEBUG = True
    checks = Command().check_configuration()
    assert checks[0].warning and "DEBUG is on" in checks[0].detail


def test_sync_schedules_prints_the_counts():
    job = PollingJobFactory(next_check_at=None)
    out = run("sync_schedules")
    assert out.strip() == "✓ Schedules in step with 1 job(s): 1 repaired"
    job.refresh_from_db()
    assert job.next_check_at is not None


# --- real processes --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    data = tmp_path_factory.mktemp("cli")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "teckochecker.test_settings",
        "DATABASE_URL": f"sqlite:///{data / 'db.sqlite3'}",
        "DATA_DIR": str(data),
        "PYTHONWARNINGS": "ignore",
    }

    manage = ManageProcesses(env, cwd=ROOT)
    try:
        assert manage("migrate", "-v", "0").returncode == 0
        for name, kind in (("openai-prod", "openai"), ("keboola-prod", "keboola")):
            assert (
                manage("secret", "add", "--name", name, "--type", kind, "--value", f"{kind}-value").returncode
                == 0
            )
        yield manage
    finally:
        manage.close()


def assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 1, result
    assert result.stderr == f"Error: {message}\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_process_job_lifecycle_and_errors(cli):
    created = cli("job", *create_args("batch_abc123", "batch_def456"))
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("✓ Polling job 'Batch processing job' created successfully (ID: ")
    assert " INFO " not in created.stderr  # the services' INFO log lines stay off the terminal
    job_id = created.stdout.rsplit("ID: ", 1)[1].rstrip(")\n")

    assert_one_line_error(cli("job", *create_args()), "At least one batch ID is required")
    assert_one_line_error(
        cli("job", *create_args("batch_1", "batch_1")),
        "Duplicate batch IDs found. Each batch ID must be unique.",
    )
    assert_one_line_error(
        cli("job", "show", "abc"),
        "argument id: ID must be a positive whole number (got 'abc') (see 'manage.py job show --help')",
    )
    assert_one_line_error(cli("job", "show", "424242"), "Job 424242 not found.")
    bad = cli("job", "frobnicate")
    assert bad.returncode == 1
    assert bad.stderr.startswith("Error: argument {create,") and bad.stderr.count("\n") == 1
    assert "invalid choice: 'frobnicate'" in bad.stderr

    shown = cli("job", "show", job_id)
    assert shown.returncode == 0 and "0/2 completed" in shown.stdout
    listed = cli("job", "list", "--json")
    assert json.loads(listed.stdout)["total"] == 1
    assert cli("job", "pause", job_id).stdout.strip() == "✓ Job 'Batch processing job' has been paused"
    assert_one_line_error(
        cli("job", "pause", job_id), f"Job {job_id} is paused; only an active job can be paused."
    )
    assert cli("job", "delete", job_id).returncode == 1  # no answer on stdin: nothing deleted
    assert cli("job", "delete", job_id, "--force").stdout.strip() == "✓ Job deleted successfully"

    status = cli("status", "--json")
    assert status.returncode == 0
    assert json.loads(status.stdout)["jobs"]["total_jobs"] == 0


# --- actions, notifications and the followed Keboola job (issue 9) ---------------------------


def test_create_a_webhook_action_job_with_notifications(secrets):
    from secrets_vault.services import secret_create

    secret_create(name="hook-header", type="http_header", value="hv")
    out = run(
        "job",
        "create",
        "--name",
        "to a webhook",
        "--batch-id",
        "batch_1",
        "--openai-secret",
        "openai-prod",
        "--action",
        "webhook",
        "--action-url",
        "https://hooks.example.com/in",
        "--action-secret",
        "hook-header",
        "--notify-email",
        "a@example.com,b@example.com",
        "--notify-webhook-url",
        "https://chat.example.com/x",
    )
    job = PollingJob.objects.get()
    assert "created successfully" in out
    assert (job.action_type, job.action_url, job.action_secret.name) == (
        "webhook",
        "https://hooks.example.com/in",
        "hook-header",
    )
    assert job.notify_emails == "a@example.com,b@example.com" and job.keboola_secret is None
    shown = run("job", "show", str(job.pk))
    assert "webhook → https://hooks.example.com/in" in shown and "a@example.com" in shown


def test_keboola_action_needs_its_secret(secrets):
    assert "--keboola-secret is required" in fails(
        "job", "create", "--name", "x", "--batch-id", "batch_1", "--openai-secret", "openai-prod"
    )
    assert PollingJob.objects.count() == 0


def test_show_reports_how_the_keboola_job_ended(secrets):
    job = PollingJobFactory(
        status=JobStatus.COMPLETED,
        keboola_job_id="901",
        keboola_job_status="error",
        keboola_job_duration_seconds=42.0,
    )
    shown = run("job", "show", str(job.pk))
    assert "Keboola Job Status" in shown and "error (42 s)" in shown
    data = json.loads(run("job", "show", str(job.pk), "--json"))
    assert data["keboola_job_status"] == "error" and data["keboola_job_duration_seconds"] == 42.0
