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
