"""Script a fake running in another process (demo, benchmark, end-to-end tests) over HTTP.

`RemoteFake(url)` has the same control methods as the in-process `FakeServer`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import quote, urlencode


class RemoteFake:
    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.openai_base_url = f"{self.url}/v1"
        self.stack_url = self.url
        self._timeout = timeout

    def _call(self, method: str, name: str, body: dict | None = None, query: dict | None = None) -> object:
        url = f"{self.url}/_control/{name}" + (f"?{urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - our own fake
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
            return json.loads(response.read())

    def health(self) -> dict:
        return self._call("GET", "health")

    def add_batch(self, batch_id: str, **options: object) -> dict:
        if "script" in options:
            options["script"] = [list(step) for step in options["script"]]  # type: ignore[union-attr]
        return self._call("POST", "batches", {"id": batch_id, **options})[0]

    def add_batches(self, batches: list[dict]) -> list[dict]:
        """Each item as for add_batch (with "id"), or with "status" as for set_batch."""
        return self._call("POST", "batches", {"batches": batches})

    def set_batch(self, batch_id: str, *, status: str, **options: object) -> dict:
        return self._call("POST", "batches", {"id": batch_id, "status": status, **options})[0]

    def batch(self, batch_id: str) -> dict | None:
        try:
            return self._call("GET", f"batches/{quote(batch_id, safe='')}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def list_batches(self) -> list[dict]:
        return self._call("GET", "batches")

    def fail(self, route: str, kind: str, **options: object) -> None:
        self._call("POST", "faults", {"route": route, "kind": kind, **options})

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def requests(self, route: str | None = None) -> list[dict]:
        return self._call("GET", "requests", query={"route": route} if route else None)

    def keboola_jobs(self) -> list[dict]:
        return self._call("GET", "keboola/jobs")

    @property
    def keboola_jobs_created(self) -> int:
        return self.stats()["keboola_jobs_created"]

    def openai_requests_per_batch(self) -> dict[str, int]:
        """Single reads (GET /v1/batches/{id}) per batch; list pages are not in it."""
        return self.stats()["openai_requests_per_batch"]

    def openai_observations_per_batch(self) -> dict[str, int]:
        """How often each batch was read or shown on a list page: a check by either way."""
        stats = self.stats()
        seen = dict(stats["openai_requests_per_batch"])
        for batch_id, count in stats["openai_listings_per_batch"].items():
            seen[batch_id] = seen.get(batch_id, 0) + count
        return seen

    def configure_keboola(self, **options: object) -> dict:
        return self._call("POST", "keboola", options)

    def send_webhooks(self, *, url: str, secret: str) -> None:
        self._call("POST", "webhooks", {"url": url, "secret": secret})

    def set_latency(self, seconds: float) -> None:
        self._call("POST", "latency", {"ms": seconds * 1000})

    def reject_openai_key(self, key: str) -> None:
        self._call("POST", "reject", {"openai_key": key})

    def reject_keboola_token(self, token: str) -> None:
        self._call("POST", "reject", {"keboola_token": token})

    def stats(self) -> dict:
        return self._call("GET", "stats")

    def timings(self) -> dict:
        return self._call("GET", "timings")

    def reset(self) -> None:
        self._call("POST", "reset")
