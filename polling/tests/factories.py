import factory
from django.utils import timezone

from polling.models import JobBatch, JobStatus, PollingJob, PollingLog
from secrets_vault.tests.factories import KeboolaSecretFactory, OpenAISecretFactory


class PollingJobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PollingJob
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"job-{n}")
    openai_secret = factory.SubFactory(OpenAISecretFactory)
    keboola_secret = factory.SubFactory(KeboolaSecretFactory)
    keboola_stack_url = "https://connection.eu-central-1.keboola.com"
    keboola_component_id = "kds-team.app-custom-python"
    keboola_configuration_id = "123456"
    poll_interval_seconds = 120
    status = JobStatus.ACTIVE
    next_check_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def batch_ids(self, create, extracted, **kwargs):
        for batch_id in extracted or ["batch_default1"]:
            JobBatch.objects.create(job=self, batch_id=batch_id)


class PollingLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PollingLog

    job = factory.SubFactory(PollingJobFactory)
    status = "info"
    message = factory.Sequence(lambda n: f"event {n}")


def make_job(fake, batch_ids, **kwargs) -> PollingJob:
    """A Keboola job watching `batch_ids` whose stack is the fake server, checked every 60 s."""
    fields = {
        "keboola_stack_url": fake.stack_url,
        "keboola_component_id": "kds-team.app-custom-python",
        "keboola_configuration_id": "123456",
        "poll_interval_seconds": 60,
        **kwargs,
    }
    return PollingJobFactory(batch_ids=batch_ids, **fields)


def triggered_job(fake, **kwargs) -> PollingJob:
    """A job whose one batch completed and whose Keboola job the check just created."""
    from polling.services.polls import job_poll

    fake.add_batch("batch_f", outcome="completed")
    job = PollingJobFactory(batch_ids=["batch_f"], keboola_stack_url=fake.stack_url, **kwargs)
    assert job_poll(job_id=job.pk).outcome == "triggered"
    job.refresh_from_db()
    return job
