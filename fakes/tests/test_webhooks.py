"""The fake OpenAI's webhook sender: one signed `batch.*` event per batch that turns terminal."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from fakes.state import FakeState
from fakes.webhooks import WebhookSender, new_webhook_secret


@pytest.fixture
def receiver():
    """A loopback HTTP server that records every POST (body, headers)."""
    received: list[tuple[bytes, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, {k.lower(): v for k, v in self.headers.items()}))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_each_batch_that_turns_terminal_is_announced_once_and_signed_like_openai(receiver):
    url, received = receiver
    state = FakeState()
    state.add_batch("batch_before", outcome="completed")  # terminal before sending starts: quiet
    state.add_batch("batch_soon", finish_after=0.3, outcome="failed")
    state.set_batch("batch_manual", status="in_progress")
    secret = new_webhook_secret()
    sender = WebhookSender(state, url=url, secret=secret, interval=0.05).start()
    try:
        state.set_batch("batch_manual", status="cancelled")
        state.add_batch("batch_burst_0", finish_after=0.2)
        state.add_batch("batch_burst_1", finish_after=0.2)
        wait_for(lambda: len(sender.sent) == 4)
        time.sleep(0.3)  # nothing more comes
    finally:
        sender.stop()
    client = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
    events = [client.webhooks.unwrap(body, headers, secret=secret) for body, headers in received]
    assert sorted((e.type, e.data.id) for e in events) == [
        ("batch.cancelled", "batch_manual"),
        ("batch.completed", "batch_burst_0"),
        ("batch.completed", "batch_burst_1"),
        ("batch.failed", "batch_soon"),
    ]
    assert len({headers["webhook-id"] for _body, headers in received}) == 4
    assert all(json.loads(body)["object"] == "event" for body, _headers in received)
    assert [d["status"] for d in sender.sent] == [200] * 4
