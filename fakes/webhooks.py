"""The fake OpenAI's webhook sender: signed `batch.*` events when a batch turns terminal.

Signs exactly like OpenAI (Standard Webhooks: `webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed by the base64 part of
the `whsec_...` secret), so the receiver verifies it with the real SDK.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

logger = logging.getLogger(__name__)

TERMINAL = {
    "completed": "batch.completed",
    "failed": "batch.failed",
    "expired": "batch.expired",
    "cancelled": "batch.cancelled",
}


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def signed_delivery(event: dict, secret: str, *, webhook_id: str | None = None, timestamp: int | None = None):
    """(body bytes, headers) of one delivery of `event`."""
    body = json.dumps(event, separators=(",", ":")).encode()
    webhook_id = webhook_id or f"wh_{secrets.token_hex(12)}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    key = base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.{body.decode()}".encode(), hashlib.sha256).digest()
    headers = {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }
    return body, headers


def batch_event(batch_id: str, status: str) -> dict:
    return {
        "id": f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "type": TERMINAL[status],
        "created_at": int(time.time()),
        "data": {"id": batch_id},
    }


class WebhookSender:
    """Watches the fake's batches and POSTs one signed event per batch that turns terminal."""

    def __init__(self, state, *, url: str, secret: str, interval: float = 0.1):
        self.state, self.url, self.secret, self.interval = state, url, secret, interval
        self.sent: list[dict] = []
        self._notified: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-webhooks", daemon=True)
        # Several deliveries at once, as OpenAI sends them: one slow receiver answer must not
        # hold back the events of other batches.
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fake-webhook")

    def start(self) -> WebhookSender:
        with self.state.lock:  # batches already terminal when webhooks were turned on stay quiet
            now = time.monotonic()
            self._notified = {b.id for b in self.state.batches.values() if b.status(now) in TERMINAL}
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self.state.lock:
                now = time.monotonic()
                due = [
                    (b.id, b.status(now)) for b in self.state.batches.values() if b.id not in self._notified
                ]
            for batch_id, status in due:
                if status in TERMINAL:
                    self._notified.add(batch_id)
                    try:
                        self._pool.submit(self._deliver, batch_event(batch_id, status))
                    except RuntimeError:  # stopped meanwhile
                        return

    def _deliver(self, event: dict) -> None:
        body, headers = signed_delivery(event, self.secret)
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback receiver)
                code = response.status
        except Exception as exc:  # the receiver being down is the point of polling as a safety net
            code = getattr(exc, "code", None) or type(exc).__name__
        self.sent.append({"event": event, "status": code, "time": time.time()})
