import io
import signal
import socket
import subprocess
import sys

import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.core.management.base import CommandError

from fakes.management.commands.demo import Command
from polling.models import JobStatus
from polling.tests.factories import PollingJobFactory


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.embedded_defaults
def test_demo_runs_the_product_end_to_end(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "DEBUG": "true",
        "TECKOCHECKER_ENV_FILE": "none",
        "DATA_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-W",
            "ignore",
            "manage.py",
            "demo",
            "--port",
            str(_free_port()),
            "--fake-port",
            str(_free_port()),
            "--finish-within",
            "8",
            "--exit-when-done",
            # Each wait (the job, the script with its environment build) may take long on a
            # loaded CI machine; on a quiet one the whole demo takes ~20 s.
            "--timeout",
            "240",
        ],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "✓ Job finished: completed_with_failures" in result.stdout
    assert "(1 create request(s) received)" in result.stdout
    assert 'batch_ids_failed         ["batch_demo_gamma"]' in result.stdout
    assert "✓ Script demo-hello succeeded in" in result.stdout
    assert "    Hello from script demo-hello, run 1" in result.stdout
    assert "    Greeting from its settings: have a nice day" in result.stdout


# --- the demo's steps, one by one -----------------------------------------------------------


def _command() -> tuple[Command, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Command(stdout=out, stderr=err), out, err


def _child(code: str) -> subprocess.Popen:
    """A real child process standing in for `manage.py start`."""
    return subprocess.Popen([sys.executable, "-c", code])


@pytest.mark.django_db
def test_prepare_database_creates_the_demo_user_with_a_fresh_password():
    password = _command()[0].prepare_database()
    assert len(password) >= 16
    user = authenticate(username="demo", password=password)
    assert user is not None and user.is_superuser


def test_start_fakes_scripts_three_batches_and_a_successful_keboola_job():
    fake = _command()[0].start_fakes(port=0, finish_within=10)
    try:
        batches = {b["id"]: b for b in fake.list_batches()}
        assert set(batches) == {"batch_demo_alpha", "batch_demo_beta", "batch_demo_gamma"}
        assert all(b["status"] not in ("completed", "failed") for b in batches.values())
        assert [b["request_counts"]["total"] for b in batches.values()] == [60, 80, 120]  # newest first
        assert (fake.keboola.outcome, fake.keboola.start_after, fake.keboola.finish_after) == (
            "success",
            2,
            6,
        )
    finally:
        fake.stop()


def test_start_fakes_on_a_taken_port_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CommandError, match=f"Cannot start the fake servers on port {port}"):
            _command()[0].start_fakes(port=port, finish_within=10)


@pytest.mark.django_db
def test_create_demo_job_watches_the_fakes_batches_with_the_fakes_stack(fake_servers):
    job = _command()[0].create_demo_job(fake_servers)
    assert job.status == JobStatus.ACTIVE and job.poll_interval_seconds == 5
    assert [b.batch_id for b in job.batches.order_by("id")] == [
        "batch_demo_alpha",
        "batch_demo_beta",
        "batch_demo_gamma",
    ]
    assert job.keboola_stack_url == fake_servers.stack_url
    assert (job.openai_secret.name, job.keboola_secret.name) == ("demo-openai", "demo-keboola")


@pytest.mark.django_db
def test_progress_is_written_only_when_it_changes():
    job = PollingJobFactory(batch_ids=["batch_demo_alpha", "batch_demo_beta"])
    command, out, err = _command()
    _, line = command.show_progress(job.pk, "")
    assert line == "  alpha: pending 0/0  beta: pending 0/0"
    job.batches.filter(batch_id="batch_demo_beta").update(
        status="completed", request_total=3, request_completed=3
    )
    _, same = command.show_progress(job.pk, line)
    assert same == "  alpha: pending 0/0  beta: completed 3/3"
    command.show_progress(job.pk, same)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].endswith("beta: completed 3/3")


@pytest.mark.django_db
def test_watch_reports_a_finished_job_and_the_service_is_stopped_cleanly(fake_servers):
    job = PollingJobFactory(status=JobStatus.COMPLETED_WITH_FAILURES, keboola_job_id="42")
    command, out, err = _command()
    service = _child("import time; time.sleep(60)")
    try:
        assert command.watch(job.pk, fake_servers, service, timeout=30, exit_when_done=True) == 0
    finally:
        command.stop_service(service)
    assert service.returncode == -signal.SIGTERM
    assert "✓ Job finished: completed_with_failures" in out.getvalue()
    assert "✓ Keboola job 42 created (0 create request(s) received)" in out.getvalue()


@pytest.mark.django_db
def test_watch_fails_for_a_failed_job(fake_servers):
    job = PollingJobFactory(status=JobStatus.FAILED)
    service = _child("import time; time.sleep(60)")
    try:
        assert _command()[0].watch(job.pk, fake_servers, service, timeout=30, exit_when_done=True) == 1
    finally:
        Command.stop_service(service)


@pytest.mark.django_db
def test_watch_gives_up_at_the_deadline(fake_servers):
    job = PollingJobFactory()
    command, out, err = _command()
    service = _child("import time; time.sleep(60)")
    try:
        assert command.watch(job.pk, fake_servers, service, timeout=0, exit_when_done=True) == 1
    finally:
        command.stop_service(service)
    assert "did not finish in time" in err.getvalue()


@pytest.mark.django_db
def test_watch_ends_when_the_service_dies_or_a_stop_is_requested(fake_servers):
    job = PollingJobFactory()
    dead = _child("pass")
    dead.wait()
    command, out, err = _command()
    assert command.watch(job.pk, fake_servers, dead, timeout=30, exit_when_done=True) == 1
    assert "did not finish" not in err.getvalue()
    running = _child("import time; time.sleep(60)")
    try:
        command.stop_requested = True
        assert command.watch(job.pk, fake_servers, running, timeout=30, exit_when_done=True) == 1
        assert running.poll() is None  # watching ends; stopping the service is the next step
    finally:
        command.stop_service(running)
