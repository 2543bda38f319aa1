"""The `script` action (polling/actions/script.py): when every batch is terminal, one run of the
chosen script with the five Keboola variables, exactly once, reached through a real check."""

from datetime import timedelta

import pytest
from django.utils import timezone

from polling.actions.script import ScriptAction
from polling.models import JobStatus, PollingJob, TriggerState
from polling.services import job_create
from polling.services.polls import job_poll
from polling.services.trigger import trigger_metadata
from scripts.models import RunTrigger, ScriptRun
from scripts.services import script_delete
from scripts.services.exceptions import ScriptStateConflict
from scripts.tests.factories import ScriptFactory
from secrets_vault.services import secret_create
from teckochecker.errors import NotFound, ValidationFailed

pytestmark = pytest.mark.django_db


def _job(fake, script, batch_ids):
    openai = secret_create(name=f"o-{batch_ids[0]}", type="openai", value="sk-script-action")
    return job_create(
        name="to a script",
        batch_ids=batch_ids,
        openai_secret_id=openai.pk,
        action_type="script",
        action_script_id=script.pk,
        poll_interval_seconds=60,
    )


def test_all_terminal_runs_the_script_once_with_the_keboola_variables(fake_openai_settings, sent):
    fake = fake_openai_settings
    fake.add_batch("batch_s1", outcome="completed")
    fake.add_batch("batch_s2", outcome="expired")
    script = ScriptFactory()
    job = _job(fake, script, ["batch_s1", "batch_s2"])

    assert job_poll(job_id=job.pk).outcome == "triggered"
    assert job_poll(job_id=job.pk, force=True).outcome == "skipped"

    run = ScriptRun.objects.get()
    assert (run.script, run.trigger, run.polling_job_id) == (script, RunTrigger.JOB, job.pk)
    assert run.extra_env == {
        "batch_ids_completed": '["batch_s1"]',
        "batch_ids_failed": '["batch_s2"]',
        "batch_count_total": "2",
        "batch_count_completed": "1",
        "batch_count_failed": "1",
    }
    job.refresh_from_db()
    assert job.status == JobStatus.COMPLETED_WITH_FAILURES and job.trigger_state == TriggerState.DONE
    assert job.logs.filter(status="triggered", message__contains=f"Script run {run.pk} queued").exists()
    assert fake.keboola_jobs() == []


def test_a_retried_trigger_adopts_the_run_that_exists(fake_openai_settings, sent):
    fake = fake_openai_settings
    fake.add_batch("batch_r1", outcome="completed")
    script = ScriptFactory()
    job = _job(fake, script, ["batch_r1"])
    job.refresh_from_db()
    meta = trigger_metadata(job)
    first = ScriptAction().send(job, meta, secret=None)
    # A worker died after the run was created, before the job recorded it: the next check
    # reconciles the unconfirmed attempt and finds the run instead of starting another.
    PollingJob.objects.filter(pk=job.pk).update(
        trigger_state=TriggerState.SENDING, trigger_started_at=timezone.now() - timedelta(hours=1)
    )
    assert job_poll(job_id=job.pk, force=True).outcome == "triggered"
    again = ScriptAction().send(job, meta, secret=None)
    assert first.reference == again.reference and ScriptRun.objects.count() == 1
    job.refresh_from_db()
    assert job.trigger_state == TriggerState.DONE


def test_the_script_action_needs_an_existing_script(fake_openai_settings):
    openai = secret_create(name="o", type="openai", value="sk-x")
    base = {"name": "j", "batch_ids": ["batch_x"], "openai_secret_id": openai.pk, "action_type": "script"}
    with pytest.raises(ValidationFailed, match="needs a script"):
        job_create(**base)
    with pytest.raises(ValidationFailed, match="must be an integer"):
        job_create(**base, action_script_id="hello-world")
    with pytest.raises(NotFound, match="Script 999 not found"):
        job_create(**base, action_script_id=999)
    assert not PollingJob.objects.exists()


def test_a_script_an_active_job_runs_cannot_be_deleted(fake_openai_settings, sent):
    script = ScriptFactory(slug="etl")
    job = _job(fake_openai_settings, script, ["batch_d1"])
    with pytest.raises(ScriptStateConflict, match=f"job {job.pk}"):
        script_delete(script=script)
    PollingJob.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED)
    script_delete(script=script)


def test_a_job_whose_script_is_gone_fails_with_the_reason(fake_openai_settings, sent):
    fake = fake_openai_settings
    fake.add_batch("batch_g1", outcome="completed")
    script = ScriptFactory()
    job = _job(fake, script, ["batch_g1"])
    PollingJob.objects.filter(pk=job.pk).update(action_script=None)
    job_poll(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "script no longer exists" in job.last_error


def test_the_api_and_the_cli_create_a_script_job(api, fake_openai_settings, sent):
    from io import StringIO

    from django.core.management import call_command

    script = ScriptFactory(slug="process-results")
    openai = secret_create(name="openai-prod", type="openai", value="sk-api")
    response = api.post(
        "/api/jobs",
        {
            "name": "api",
            "batch_ids": ["batch_api1"],
            "openai_secret_id": openai.pk,
            "action_type": "script",
            "action_script_id": script.pk,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["action_type"] == "script" and response.json()["action_script_id"] == script.pk
    out = StringIO()
    call_command(
        "job", "create", "--name", "cli", "--batch-id", "batch_cli1", "--openai-secret", "openai-prod",
        "--script", "process-results", stdout=out,
    )  # fmt: skip
    assert "created successfully" in out.getvalue()
    assert PollingJob.objects.get(name="cli").action_script == script
