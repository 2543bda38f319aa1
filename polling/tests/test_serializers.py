import pytest
from django.utils import timezone

from polling.models import JobBatch
from polling.serializers import BatchSerializer, batch_representation
from polling.tests.factories import PollingJobFactory

pytestmark = pytest.mark.django_db


def test_hand_built_batch_matches_the_serializer():
    job = PollingJobFactory(batch_ids=["batch_a", "batch_b"])
    JobBatch.objects.filter(batch_id="batch_b").update(
        status="completed",
        request_total=10,
        request_completed=9,
        request_failed=1,
        completed_at=timezone.now(),
    )
    for batch in job.batches.all():
        assert batch_representation(batch) == BatchSerializer(batch).data


def _varied_jobs():
    """Jobs that exercise every branch of the job shape: secrets gone, triggered, a webhook action."""
    now = timezone.now()
    plain = PollingJobFactory(batch_ids=["batch_a", "batch_b", "batch_c"])
    JobBatch.objects.filter(job=plain, batch_id="batch_b").update(
        status="completed", request_total=5, request_completed=5, completed_at=now
    )
    JobBatch.objects.filter(job=plain, batch_id="batch_c").update(status="expired", completed_at=now)
    triggered = PollingJobFactory(
        status="completed",
        completed_at=now,
        last_check_at=now,
        keboola_job_id="987",
        keboola_job_url="https://connection.keboola.com/jobs/987",
        keboola_job_status="success",
        keboola_job_finished_at=now,
        keboola_job_duration_seconds=12,
        trigger_state="done",
        notify_emails="ops@example.com",
    )
    orphan = PollingJobFactory(openai_secret=None, keboola_secret=None, last_error="OpenAI rejected the key.")
    webhook = PollingJobFactory(
        action_type="webhook", action_url="https://hooks.example.com/x", keboola_secret=None, batch_ids=[]
    )
    return [plain, triggered, orphan, webhook]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Prague"])
def test_the_fast_job_shape_matches_the_serializer_for_every_kind_of_job(settings, zone):
    from polling import selectors

    settings.TIME_ZONE = zone
    from polling.serializers import JobSerializer, job_representation

    jobs = _varied_jobs()
    for job in jobs:
        expected = JobSerializer(selectors.job_detail(job_id=job.pk)).data
        assert job_representation(selectors.job_row(job_id=job.pk)) == expected
    rows, total = selectors.job_rows(limit=3, offset=1)
    page, page_total = selectors.job_list(limit=3, offset=1)
    assert total == page_total == len(jobs)
    assert [job_representation(r) for r in rows] == JobSerializer(page, many=True).data


def test_the_job_rows_take_the_same_queries_for_one_job_or_many(django_assert_max_num_queries):
    from polling import selectors

    _varied_jobs()
    with django_assert_max_num_queries(4):
        rows, _ = selectors.job_rows(limit=100)
    assert len(rows) == 4
    for _ in range(20):
        PollingJobFactory(batch_ids=["batch_x", "batch_y"])
    with django_assert_max_num_queries(4):
        rows, _ = selectors.job_rows(limit=100, search="batch_")
    assert len(rows) == 24


def test_job_row_of_a_missing_or_invalid_id_is_not_found():
    from polling import selectors
    from polling.services import JobNotFound

    for bad in (424242, 0, -1, 2**70):
        with pytest.raises(JobNotFound):
            selectors.job_row(job_id=bad)
