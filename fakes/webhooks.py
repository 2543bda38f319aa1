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
        # Per batch: its script (set_batch replaces it) and when that script ends terminal.
        self._ends: dict[str, tuple[list, float | None, str]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-webhooks", daemon=True)
        # Several deliveries at once, as OpenAI sends them: one slow receiver answer must not
        # hold back the events of other batches.
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fake-webhook")

    def start(self) -> WebhookSender:
        # Batches already terminal when webhooks were turned on stay quiet.
        self._notified = {batch_id for batch_id, _status in self._due()}
        self._thread.start()
        return self

    def _due(self) -> list[tuple[str, str]]:
        """(id, status) of the batches not notified yet whose script has reached a terminal
        status. Cheap enough for a burst of thousands of batches ten times a second: the lock
        (which every fake API answer needs) is held only to copy the list, and a batch's end
        is worked out again only when its script changed."""
        with self.state.lock:
            batches = list(self.state.batches.values())
        now = time.monotonic()
        due = []
        for batch in batches:
            if batch.id in self._notified:
                continue
            script = batch.script
            known = self._ends.get(batch.id)
            if known is None or known[0] is not script:
                offset, status = script[-1]
                known = (script, batch.added_mono + offset if status in TERMINAL else None, status)
                self._ends[batch.id] = known
            if known[1] is not None and known[1] <= now:
                due.append((batch.id, known[2]))
        return due

    def stop(self) -> None:
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for batch_id, status in self._due():
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
