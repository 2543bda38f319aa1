"""A configuration with one of everything a bundle holds, made through the services."""

from polling.models import JobStatus, PollingJob
from polling.services import job_create, job_pause
from scripts.services import script_create
from secrets_vault.services import secret_create

# Secret values no output may ever contain.
CANARIES = ("sk-canary-openai-0123456789", "kb-canary-keboola-0123456789", "hdr-canary-header-0123456789")
STACK = "https://connection.eu-central-1.keboola.com"


def make_world() -> dict:
    openai = secret_create(name="openai-prod", type="openai", value=CANARIES[0])
    secret_create(name="keboola-prod", type="keboola", value=CANARIES[1])
    secret_create(name="hook-header", type="http_header", value=CANARIES[2])
    nightly = script_create(
        name="Nightly Export",
        folder="etl/daily",
        code="import os\nprint(os.environ['MODE'])\n",
        requirements="requests==2.32.3\n",
        timeout_seconds=120,
        memory_mb=256,
        network=True,
        env=[{"name": "TOKEN", "secret": "hook-header"}, {"name": "MODE", "value": "prod"}],
        schedule={"type": "cron", "cron": "0 3 * * *", "timezone": "Europe/Prague"},
        notify={"on_failure": True, "emails": ["ops@example.com"]},
        url_trigger=True,
    )
    script_create(
        name="Every Five", code="print(5)\n", schedule={"type": "interval", "every": 5, "unit": "minutes"}
    )
    script_create(name="Off", code="print(0)\n", enabled=False, overlap="queue")
    job_create(
        name="Keboola job",
        batch_ids=["batch_b", "batch_a"],
        openai_secret_id=openai.pk,
        keboola_secret_id=_id("keboola-prod"),
        keboola_stack_url=STACK,
        keboola_component_id="kds-team.app-custom-python",
        keboola_configuration_id="123456",
        poll_interval_seconds=300,
        notify_emails="a@example.com,b@example.com",
    )
    paused = job_create(
        name="Webhook job",
        batch_ids=["batch_w"],
        openai_secret_id=openai.pk,
        action_type="webhook",
        action_url="https://hooks.example.com/done",
        action_secret_id=_id("hook-header"),
        notify_webhook_url="https://hooks.example.com/notify",
    )
    job_pause(job=paused)
    job_create(
        name="Script job",
        batch_ids=["batch_s"],
        openai_secret_id=openai.pk,
        action_type="script",
        action_script_id=nightly.pk,
    )
    done = job_create(
        name="Old job",
        batch_ids=["batch_old"],
        openai_secret_id=openai.pk,
        action_type="script",
        action_script_id=nightly.pk,
    )
    PollingJob.objects.filter(pk=done.pk).update(status=JobStatus.COMPLETED)
    return {"nightly": nightly}


def _id(name: str) -> int:
    from secrets_vault.models import Secret

    return Secret.objects.get(name=name).pk
