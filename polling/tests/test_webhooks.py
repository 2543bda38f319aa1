"""OpenAI webhooks: verified with the real SDK, replays ignored, and they only cause a check."""

import json
import time

import pytest

from fakes.webhooks import batch_event, new_webhook_secret, signed_delivery
from polling.models import JobStatus, WebhookDelivery
from polling.services.webhooks import openai_webhook_receive
from polling.tests.factories import PollingJobFactory
from polling.tests.stack import wait_for
from secrets_vault.services import secret_create

pytestmark = pytest.mark.django_db
URL = "/api/webhooks/openai"


@pytest.fixture
def whsec():
    secret = new_webhook_secret()
    secret_create(name="openai-webhook", type="openai_webhook", value=secret)
    return secret


def post(client, event, secret, **kwargs):
    body, headers = signed_delivery(event, secret, **kwargs)
    return client.generic(
        "POST",
        URL,
        body,
        content_type="application/json",
        **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items() if k != "Content-Type"},
    )


def test_valid_event_queues_a_check_of_each_active_job_watching_the_batch(
    anon, whsec, django_capture_on_commit_callbacks
):
    watching = PollingJobFactory(batch_ids=["batch_hook"])
    also = PollingJobFactory(batch_ids=["batch_other", "batch_hook"])
    PollingJobFactory(batch_ids=["batch_hook"], status=JobStatus.PAUSED)
    PollingJobFactory(batch_ids=["batch_unrelated"])
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(anon, batch_event("batch_hook", "completed"), whsec)
    assert response.status_code == 200
    assert sorted(response.json()["jobs"]) == sorted([watching.pk, also.pk])
    assert len(callbacks) == 2
    # The event itself changed nothing: the poll reads the real state.
    watching.refresh_from_db()
    assert watching.status == JobStatus.ACTIVE and watching.batches.get().status == "pending"


def test_bad_or_stale_signature_is_400_and_changes_nothing(anon, whsec):
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
    assert WebhookDelivery.objects.count() == 0


def test_a_replayed_delivery_is_acknowledged_without_effect(anon, whsec, django_capture_on_commit_callbacks):
    PollingJobFactory(batch_ids=["batch_hook"])
    event = batch_event("batch_hook", "failed")
    first = post(anon, event, whsec, webhook_id="wh_same")
    with django_capture_on_commit_callbacks() as callbacks:
        again = post(anon, event, whsec, webhook_id="wh_same")
    assert first.status_code == again.status_code == 200
    assert again.json()["replay"] is True and callbacks == []
    assert WebhookDelivery.objects.count() == 1


def test_without_a_configured_secret_everything_is_refused(anon):
    response = post(anon, batch_event("batch_x", "completed"), new_webhook_secret())
    assert response.status_code == 400 and "openai_webhook" in response.json()["detail"]


def test_other_event_types_are_acknowledged_and_ignored(whsec):
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
    outcome = openai_webhook_receive(payload=body, headers=headers)
    assert outcome.accepted and outcome.jobs_checked == []


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
