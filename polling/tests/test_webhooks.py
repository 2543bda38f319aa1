"""OpenAI webhooks: verified with the real SDK before anything else, replays ignored, only
failures throttled, and an event only asks for a confirmation (polling/tests/test_confirm.py)."""

import json
import time
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import DatabaseError
from django.utils import timezone

from fakes.webhooks import batch_event, new_webhook_secret, signed_delivery
from polling.api import WebhookFailureThrottle
from polling.models import JobBatch, JobStatus, PollingJob, WebhookDelivery
from polling.services import confirm, webhooks
from polling.services.webhooks import (
    openai_webhook_accept,
    openai_webhook_verify,
    webhook_deliveries_prune,
    webhook_secrets,
)
from polling.tests.factories import PollingJobFactory
from polling.tests.stack import wait_for
from secrets_vault.services import secret_create

pytestmark = pytest.mark.django_db
URL = "/api/webhooks/openai"


@pytest.fixture(autouse=True)
def fresh_state():
    """Each test starts with no throttle history and no webhook secrets in memory."""
    cache.clear()
    webhook_secrets.clear()
    yield
    cache.clear()
    webhook_secrets.clear()


@pytest.fixture
def whsec():
    secret = new_webhook_secret()
    secret_create(name="openai-webhook", type="openai_webhook", value=secret)
    return secret


@pytest.fixture
def sent(monkeypatch):
    """The confirmation tasks the receiver sends (job ids), instead of the broker."""
    calls: list[int] = []

    def record(name, *, args=(), kwargs=None, queue="", countdown=0):
        assert (name, queue) == (confirm.CONFIRM_TASK, confirm.settings.WEBHOOK_QUEUE)
        calls.append(args[0])
        return True

    monkeypatch.setattr(confirm, "task_send", record)
    return calls


def post(client, event, secret, **kwargs):
    body, headers = signed_delivery(event, secret, **kwargs)
    return client.generic(
        "POST",
        URL,
        body,
        content_type="application/json",
        **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items() if k != "Content-Type"},
    )


def test_valid_event_announces_the_batch_and_asks_one_confirmation_per_active_job(anon, whsec, sent):
    watching = PollingJobFactory(batch_ids=["batch_hook"])
    also = PollingJobFactory(batch_ids=["batch_other", "batch_hook"])
    PollingJobFactory(batch_ids=["batch_hook"], status=JobStatus.PAUSED)
    PollingJobFactory(batch_ids=["batch_unrelated"])
    response = post(anon, batch_event("batch_hook", "completed"), whsec)
    assert response.status_code == 200
    assert sorted(response.json()["jobs"]) == sorted([watching.pk, also.pk])
    assert sorted(sent) == sorted([watching.pk, also.pk])
    announced = JobBatch.objects.filter(announced_at__isnull=False)
    assert sorted(announced.values_list("job_id", flat=True)) == sorted([watching.pk, also.pk])
    # The event itself changed nothing: the confirmation reads the real state.
    watching.refresh_from_db()
    assert watching.status == JobStatus.ACTIVE and watching.batches.get().status == "pending"


def test_events_for_one_job_share_one_confirmation(anon, whsec, sent):
    job = PollingJobFactory(batch_ids=[f"batch_{i}" for i in range(5)])
    for i in range(4):
        assert post(anon, batch_event(f"batch_{i}", "completed"), whsec).status_code == 200
    assert sent == [job.pk]
    assert job.batches.filter(announced_at__isnull=False).count() == 4


def test_an_event_for_a_batch_already_known_to_be_finished_asks_nothing(anon, whsec, sent):
    job = PollingJobFactory(batch_ids=["batch_done", "batch_open"])
    job.batches.filter(batch_id="batch_done").update(status="completed")
    assert post(anon, batch_event("batch_done", "completed"), whsec).json()["jobs"] == []
    assert sent == []


def test_bad_or_stale_signature_is_400_and_changes_nothing(anon, whsec, sent):
    PollingJobFactory(batch_ids=["batch_hook"])
    assert post(anon, batch_event("batch_hook", "completed"), new_webhook_secret()).status_code == 400
    assert (
        post(
            anon, batch_event("batch_hook", "completed"), whsec, timestamp=int(time.time()) - 3600
        ).status_code
        == 400
    )
    body, headers = signed_delivery(batch_event("batch_hook", "completed"), whsec)
    tampered = body.replace(b"batch_hook", b"batch_evil")
    response = anon.generic(
        "POST",
        URL,
        tampered,
        content_type="application/json",
        HTTP_WEBHOOK_ID=headers["webhook-id"],
        HTTP_WEBHOOK_TIMESTAMP=headers["webhook-timestamp"],
        HTTP_WEBHOOK_SIGNATURE=headers["webhook-signature"],
    )
    assert response.status_code == 400
    assert anon.post(URL, {}, format="json").status_code == 400
    assert WebhookDelivery.objects.count() == 0 and sent == []
    assert not JobBatch.objects.filter(announced_at__isnull=False).exists()


def test_a_replayed_delivery_is_acknowledged_without_effect(anon, whsec, sent):
    job = PollingJobFactory(batch_ids=["batch_hook"])
    event = batch_event("batch_hook", "failed")
    first = post(anon, event, whsec, webhook_id="wh_same")
    PollingJob.objects.filter(pk=job.pk).update(confirm_requested_at=None)  # as if confirmed
    JobBatch.objects.update(announced_at=None)
    again = post(anon, event, whsec, webhook_id="wh_same")
    assert first.status_code == again.status_code == 200
    assert again.json()["replay"] is True and sent == [job.pk]
    assert WebhookDelivery.objects.count() == 1
    assert not JobBatch.objects.filter(announced_at__isnull=False).exists()


def test_a_delivery_whose_batch_could_not_be_marked_is_acted_on_when_openai_retries_it(
    anon, whsec, sent, monkeypatch
):
    job = PollingJobFactory(batch_ids=["batch_hook"])
    event = batch_event("batch_hook", "completed")
    real_mark = webhooks.batches_mark

    def failing_mark(**kwargs):
        real_mark(**kwargs)
        raise DatabaseError("the database went away")

    monkeypatch.setattr(webhooks, "batches_mark", failing_mark)
    with pytest.raises(DatabaseError):
        post(anon, event, whsec, webhook_id="wh_retried")
    # Neither the delivery nor the mark was stored, and nothing was asked for.
    assert WebhookDelivery.objects.count() == 0 and sent == []
    assert not JobBatch.objects.filter(announced_at__isnull=False).exists()

    monkeypatch.setattr(webhooks, "batches_mark", real_mark)
    retried = post(anon, event, whsec, webhook_id="wh_retried")
    assert retried.status_code == 200 and retried.json()["replay"] is False
    assert retried.json()["jobs"] == [job.pk] and sent == [job.pk]
    assert job.batches.get().announced_at is not None


def test_a_burst_of_valid_deliveries_is_never_throttled(anon, whsec, sent, monkeypatch):
    monkeypatch.setattr(WebhookFailureThrottle, "THROTTLE_RATES", {"webhook": "2/minute"})
    jobs = [PollingJobFactory(batch_ids=[f"batch_{i}"]) for i in range(12)]
    codes = [post(anon, batch_event(f"batch_{i}", "completed"), whsec).status_code for i in range(12)]
    assert codes == [200] * 12
    assert sorted(sent) == sorted(job.pk for job in jobs)


def test_failed_verifications_are_throttled_per_client_but_valid_ones_still_pass(
    anon, whsec, sent, monkeypatch
):
    monkeypatch.setattr(WebhookFailureThrottle, "THROTTLE_RATES", {"webhook": "2/minute"})
    PollingJobFactory(batch_ids=["batch_ok"])
    forged = [post(anon, batch_event("batch_x", "completed"), new_webhook_secret()) for _ in range(4)]
    assert [r.status_code for r in forged] == [400, 400, 429, 429]
    assert "Retry-After" in forged[-1].headers
    # The same address with a valid signature is served at once.
    assert post(anon, batch_event("batch_ok", "completed"), whsec).status_code == 200
    # Another address has its own budget.
    other = anon.generic("POST", URL, b"{}", content_type="application/json", REMOTE_ADDR="10.9.9.9")
    assert other.status_code == 400


def test_verification_needs_no_query_once_the_secrets_are_loaded(whsec, django_assert_num_queries):
    body, headers = signed_delivery(batch_event("batch_x", "completed"), whsec)
    openai_webhook_verify(payload=body, headers=headers)  # loads the secrets
    body, headers = signed_delivery(batch_event("batch_y", "completed"), whsec)
    with django_assert_num_queries(0):
        assert openai_webhook_verify(payload=body, headers=headers).batch_id == "batch_y"


def test_a_secret_added_later_is_used_at_once(anon, whsec, sent):
    PollingJobFactory(batch_ids=["batch_new"])
    assert post(anon, batch_event("batch_new", "completed"), whsec).status_code == 200
    rotated = new_webhook_secret()
    secret_create(name="openai-webhook-2", type="openai_webhook", value=rotated)
    assert post(anon, batch_event("batch_new", "completed"), rotated).status_code == 200


def test_deliveries_are_forgotten_after_a_day():
    old = WebhookDelivery.objects.create(webhook_id="wh_old", event_type="batch.completed")
    WebhookDelivery.objects.filter(pk=old.pk).update(
        received_at=timezone.now() - timedelta(days=1, seconds=1)
    )
    WebhookDelivery.objects.create(webhook_id="wh_new", event_type="batch.completed")
    assert webhook_deliveries_prune() == 1
    assert list(WebhookDelivery.objects.values_list("webhook_id", flat=True)) == ["wh_new"]


def test_without_a_configured_secret_everything_is_refused(anon):
    response = post(anon, batch_event("batch_x", "completed"), new_webhook_secret())
    assert response.status_code == 400 and "openai_webhook" in response.json()["detail"]


def test_other_event_types_are_acknowledged_and_ignored(whsec, sent):
    body, headers = signed_delivery(
        {
            "id": "evt_1",
            "object": "event",
            "type": "response.completed",
            "created_at": int(time.time()),
            "data": {"id": "resp_1"},
        },
        whsec,
    )
    outcome = openai_webhook_accept(event=openai_webhook_verify(payload=body, headers=headers))
    assert outcome.accepted and outcome.jobs_checked == [] and sent == []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_fake_openai_sends_signed_webhooks_that_trigger_within_a_second(
    fake_openai_settings, live_server, request
):
    """Poll interval 60 s: only the webhook can explain a trigger within seconds."""
    from polling.services import job_create
    from polling.tests.stack import running_stack

    fake = fake_openai_settings
    whsec = new_webhook_secret()
    secret_create(name="hook", type="openai_webhook", value=whsec)
    openai_secret = secret_create(name="o", type="openai", value="sk-hook")
    keboola_secret = secret_create(name="k", type="keboola", value="kbc-hook")
    fake.set_batch("batch_fast", status="in_progress")
    with running_stack(request.node.name, beat=False) as stack:
        job = job_create(
            name="hooked",
            batch_ids=["batch_fast"],
            openai_secret_id=openai_secret.pk,
            keboola_secret_id=keboola_secret.pk,
            keboola_stack_url=fake.stack_url,
            keboola_component_id="c",
            keboola_configuration_id="1",
            poll_interval_seconds=60,
        )
        wait_for(
            lambda: fake.openai_requests_per_batch().get("batch_fast"), timeout=30, message="first check"
        )
        sender = fake.send_webhooks(url=f"{live_server.url}{URL}", secret=whsec)
        fake.set_batch("batch_fast", status="completed")
        finished_at = time.monotonic()
        try:
            wait_for(lambda: fake.keboola_jobs_created == 1, timeout=20, message="trigger after the webhook")
        except AssertionError:
            print(stack.log("worker1")[-3000:], sender.sent)
            raise
        latency = time.monotonic() - finished_at
    assert [s["status"] for s in sender.sent] == [200]
    assert json.loads(fake.keboola_jobs()[0]["variables"]["batch_ids_completed"]) == ["batch_fast"]
    print(f"webhook trigger latency: {latency:.2f}s")
    job.refresh_from_db()
