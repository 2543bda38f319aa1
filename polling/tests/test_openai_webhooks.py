"""Our Standard Webhooks check gives the SDK's answers (the SDK stays out of the web process)."""

import time

import openai
import pytest

from fakes.webhooks import batch_event, new_webhook_secret, signed_delivery
from polling.integrations.openai_webhooks import unwrap_webhook
from teckochecker.integrations import Rejected

SECRET = new_webhook_secret()
OTHER = new_webhook_secret()


def sdk_accepts(body: bytes, headers: dict, secret: str) -> bool:
    client = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
    try:
        client.webhooks.unwrap(body, headers, secret=secret)
    except (openai.InvalidWebhookSignatureError, ValueError, KeyError):
        return False
    return True


def ours_accepts(body: bytes, headers: dict, secret: str) -> bool:
    try:
        unwrap_webhook(payload=body, headers=headers, secrets=[secret])
    except Rejected:
        return False
    return True


def deliveries():
    event = batch_event("batch_x", "completed")
    body, headers = signed_delivery(event, SECRET)
    yield "valid", body, headers, True
    yield "other secret", *signed_delivery(event, OTHER), False
    yield "stale", *signed_delivery(event, SECRET, timestamp=int(time.time()) - 400), False
    yield "from the future", *signed_delivery(event, SECRET, timestamp=int(time.time()) + 400), False
    yield "tampered body", body.replace(b"batch_x", b"batch_y"), headers, False
    yield "another id", body, {**headers, "webhook-id": "wh_other"}, False
    _, other_headers = signed_delivery(event, OTHER, webhook_id=headers["webhook-id"])
    both = f"{other_headers['webhook-signature']} {headers['webhook-signature']}"
    yield "one of two signatures", body, {**headers, "webhook-signature": both}, True
    yield "no signature", body, {k: v for k, v in headers.items() if k != "webhook-signature"}, False
    yield "no timestamp", body, {k: v for k, v in headers.items() if k != "webhook-timestamp"}, False
    yield "bad timestamp", body, {**headers, "webhook-timestamp": "soon"}, False


# Each delivery is signed when its test runs, not at collection: signatures carry the time, and
# a suite that runs for minutes would turn "valid" stale and "from the future" present.
@pytest.mark.parametrize("name", [case[0] for case in deliveries()])
def test_our_check_agrees_with_the_sdk(name):
    _, body, headers, valid = next(case for case in deliveries() if case[0] == name)
    assert sdk_accepts(body, headers, SECRET) is valid
    assert ours_accepts(body, headers, SECRET) is valid


def test_the_event_says_which_batch_and_how_it_ended():
    body, headers = signed_delivery(batch_event("batch_z", "expired"), SECRET, webhook_id="wh_1")
    event = unwrap_webhook(payload=body, headers=headers, secrets=[OTHER, SECRET])
    assert (event.webhook_id, event.event_type, event.batch_id) == ("wh_1", "batch.expired", "batch_z")


def test_a_signed_body_that_is_not_an_event_is_refused():
    body, headers = signed_delivery(["not", "an", "event"], SECRET)
    with pytest.raises(Rejected, match="not an event"):
        unwrap_webhook(payload=body, headers=headers, secrets=[SECRET])
