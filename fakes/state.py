"""The fake servers' state: scripted OpenAI batches, Keboola jobs, faults and the request log.

Pure stdlib and thread-safe (one lock around everything). Batch and job states are computed from
the clock on every read, so a script plays out without any background thread.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

ROUTES = ("openai.retrieve", "openai.list", "keboola.create", "keboola.get", "keboola.search")
FAULT_KINDS = ("429", "500", "401", "404", "timeout", "slow", "reset", "timeout_after_create")
BATCH_STATUSES = (
    "validating",
    "in_progress",
    "finalizing",
    "completed",
    "failed",
    "expired",
    "cancelling",
    "cancelled",
)
BATCH_OUTCOMES = ("completed", "failed", "expired", "cancelled")
KEBOOLA_OUTCOMES = ("success", "error", "warning")
# Terminal batch status -> the timestamp field OpenAI sets when the batch reaches it.
_STATUS_TIMESTAMPS = {
    "in_progress": "in_progress_at",
    "finalizing": "finalizing_at",
    "completed": "completed_at",
    "failed": "failed_at",
    "expired": "expired_at",
    "cancelling": "cancelling_at",
    "cancelled": "cancelled_at",
}
DEFAULT_TIMEOUT_DELAY = 35.0  # longer than the app's default client timeouts (20 s / 30 s)
DEFAULT_SLOW_DELAY = 0.3
MAX_LOGGED_REQUESTS = 100_000  # a long benchmark must not grow the log without bound


def fingerprint(secret: str) -> str:
    """What the fake stores instead of a key or token: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def iso_utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class FakeInputError(ValueError):
    """A control call (Python or HTTP) was given something the fake cannot use."""


@dataclass
class Batch:
    id: str
    script: list[tuple[float, str]]
    total: int
    failed_requests: int
    added_mono: float
    added_wall: float
    endpoint: str = "/v1/chat/completions"
    fixed_counts: tuple[int, int] | None = None  # (completed, failed) set by set_batch
    metadata: dict | None = None

    def _current(self, elapsed: float) -> int:
        index = 0
        for i, (offset, _status) in enumerate(self.script):
            if offset <= elapsed:
                index = i
        return index

    def counts(self, elapsed: float) -> tuple[int, int]:
        if self.fixed_counts is not None:
            return self.fixed_counts
        index = self._current(elapsed)
        status = self.script[index][1]
        succeeded_total = self.total - self.failed_requests
        if status in ("validating", "failed"):
            return 0, 0
        if status in ("finalizing", "completed"):
            return succeeded_total, self.failed_requests
        if status == "in_progress":
            start = self.script[index][0]
            end = self.script[index + 1][0] if index + 1 < len(self.script) else start + 60.0
            fraction = min(max((elapsed - start) / max(end - start, 1e-6), 0.0), 1.0)
            return int(fraction * succeeded_total), int(fraction * self.failed_requests)
        # expired / cancelling / cancelled: work stopped half-way if it had started.
        started = any(s == "in_progress" for _o, s in self.script[:index])
        return (succeeded_total // 2, self.failed_requests // 2) if started else (0, 0)

    def to_openai(self, now_mono: float) -> dict:
        """The batch as OpenAI's `Batch` schema describes it (unset optional fields left out)."""
        elapsed = now_mono - self.added_mono
        index = self._current(elapsed)
        status = self.script[index][1]
        created_at = int(self.added_wall)
        body: dict = {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": "gpt-4o-mini-2024-07-18",
            "input_file_id": f"file-{fingerprint(self.id)[:24]}",
            "completion_window": "24h",
            "status": status,
            "created_at": created_at,
            "expires_at": created_at + 86400,
            "metadata": self.metadata,
        }
        for offset, passed in self.script[: index + 1]:
            if passed in _STATUS_TIMESTAMPS:
                body[_STATUS_TIMESTAMPS[passed]] = int(self.added_wall + offset)
        completed, failed = self.counts(elapsed)
        body["request_counts"] = {"total": self.total, "completed": completed, "failed": failed}
        if status == "completed":
            body["output_file_id"] = f"file-out{fingerprint(self.id)[:20]}"
            if failed:
                body["error_file_id"] = f"file-err{fingerprint(self.id)[:20]}"
        if status == "failed":
            body["errors"] = {
                "object": "list",
                "data": [
                    {
                        "code": "invalid_json_line",
                        "message": "This line is not parseable as valid JSON.",
                        "param": None,
                        "line": 1,
                    }
                ],
            }
        return body

    def status(self, now_mono: float) -> str:
        return self.script[self._current(now_mono - self.added_mono)][1]


def batch_script(*, finish_after: float, outcome: str = "completed") -> list[tuple[float, str]]:
    """A plausible script that reaches `outcome` after `finish_after` seconds."""
    if outcome not in BATCH_OUTCOMES:
        raise FakeInputError(f"outcome must be one of {', '.join(BATCH_OUTCOMES)}")
    t = max(float(finish_after), 0.0)
    if t == 0:
        return [(0.0, outcome)]
    if outcome == "failed":
        return [(0.0, "validating"), (t, "failed")]
    if outcome == "cancelled":
        return [(0.0, "validating"), (t * 0.1, "in_progress"), (t * 0.8, "cancelling"), (t, "cancelled")]
    if outcome == "expired":
        return [(0.0, "validating"), (t * 0.1, "in_progress"), (t, "expired")]
    return [(0.0, "validating"), (t * 0.1, "in_progress"), (t * 0.9, "finalizing"), (t, "completed")]


@dataclass
class KeboolaJob:
    id: str
    created_mono: float
    created_wall: float
    body: dict
    token_fingerprint: str
    base_url: str
    start_after: float
    finish_after: float
    outcome: str

    def status(self, now_mono: float) -> str:
        elapsed = now_mono - self.created_mono
        if elapsed >= self.finish_after:
            return self.outcome
        return "processing" if elapsed >= self.start_after else "created"

    def to_keboola(self, now_mono: float) -> dict:
        """The job as the Queue API's `Job` schema describes it."""
        status = self.status(now_mono)
        started = status != "created"
        finished = status in KEBOOLA_OUTCOMES
        run_seconds = self.finish_after - self.start_after
        return {
            "id": self.id,
            "runId": self.id,
            "project": {"id": "1234", "name": "Fake project"},
            "token": {"id": str(int(self.token_fingerprint[:6], 16)), "description": "fake token"},
            "status": status,
            "desiredStatus": "processing",
            "mode": "debug" if self.body.get("mode") == "debug" else "run",  # forceRun runs as "run"
            "component": self.body["component"],
            "config": self.body.get("config"),
            "configRow": None,
            "configData": self.body.get("configData"),
            "tag": self.body.get("tag"),
            "result": {"message": "Component processing finished."} if finished else None,
            "createdTime": iso_utc(self.created_wall),
            "startTime": iso_utc(self.created_wall + self.start_after) if started else None,
            "endTime": iso_utc(self.created_wall + self.finish_after) if finished else None,
            "delayedStartTime": None,
            "durationSeconds": int(round(run_seconds)) if finished else None,
            "isFinished": finished,
            "url": f"{self.base_url}/jobs/{self.id}",
            "variableValuesId": self.body.get("variableValuesId"),
            "variableValuesData": self.body.get("variableValuesData") or {"values": []},
            "backend": {"type": "small", "context": f"1234-{self.body['component']}"},
            "metrics": None,
            "type": "standard",
            "orchestrationTaskId": None,
            "previousJobId": None,
            "onlyOrchestrationTaskIds": None,
        }

    def variables(self) -> dict[str, str]:
        values = (self.body.get("variableValuesData") or {}).get("values") or []
        return {v["name"]: v["value"] for v in values}


@dataclass
class Fault:
    route: str
    kind: str
    times: int | None
    until_mono: float | None
    retry_after: str | None
    delay: float
    target: str | None

    def active(self, now_mono: float) -> bool:
        if self.until_mono is not None:
            return now_mono < self.until_mono
        return self.times is None or self.times > 0


@dataclass
class KeboolaBehaviour:
    start_after: float = 1.0
    finish_after: float = 3.0
    outcome: str = "success"


@dataclass
class FakeState:
    """Everything the fake knows. Public methods are the Python control surface."""

    latency: float = 0.0
    base_url: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._reset_data()

    def _reset_data(self) -> None:
        self.batches: dict[str, Batch] = {}
        self._order: list[str] = []  # batch ids, oldest first: the list pages read it backwards
        self._position: dict[str, int] = {}
        self.jobs: dict[str, KeboolaJob] = {}
        self.faults: list[Fault] = []
        self.request_log: list[dict] = []
        self.request_count = 0
        self.batch_requests: dict[str, int] = {}
        self.batch_request_times: dict[str, list[float]] = {}  # not capped: one float per request
        self.batch_listed_times: dict[str, list[float]] = {}  # when a list page showed the batch
        self.list_requests = 0
        # A *walk* is a run of list pages, each going on where an earlier one ended: a page whose
        # `after` is not where an earlier page ended starts one (bench/report.py).
        self.list_walks = 0
        self._page_ends: set[str] = set()
        self.invalid_openai_keys: set[str] = set()
        self.invalid_keboola_tokens: set[str] = set()
        self.keboola = KeboolaBehaviour()
        self._job_ids = itertools.count(int(time.time()) * 1000 % 10**9 + 10**9)
        # What GET /v2/storage/buckets lists (Keboola's Storage API; only this one call is faked).
        self.storage_buckets: list[dict] = [
            {"id": "in.c-main", "name": "main", "stage": "in", "description": "Raw data"},
            {"id": "out.c-results", "name": "results", "stage": "out", "description": "Batch results"},
        ]

    # --- control: batches ----------------------------------------------------------------
    def add_batch(
        self,
        batch_id: str,
        *,
        script: list | None = None,
        finish_after: float | None = None,
        outcome: str = "completed",
        total: int = 100,
        failed_requests: int = 0,
        endpoint: str = "/v1/chat/completions",
        metadata: dict | None = None,
    ) -> dict:
        """Add (or replace) a batch. `script` is [(seconds since added, status), ...]; without it
        `finish_after` (default 0: already finished) and `outcome` build one."""
        if script is None:
            script = batch_script(finish_after=finish_after or 0.0, outcome=outcome)
        steps = sorted(((float(offset), str(status)) for offset, status in script), key=lambda s: s[0])
        if not steps or any(status not in BATCH_STATUSES for _o, status in steps):
            raise FakeInputError(f"a script needs statuses among {', '.join(BATCH_STATUSES)}")
        if steps[0][0] > 0:
            steps.insert(0, (0.0, "validating"))
        if not 0 <= int(failed_requests) <= int(total):
            raise FakeInputError("failed_requests must be between 0 and total")
        with self.lock:
            self._place(batch_id)
            self.batches[batch_id] = Batch(
                id=batch_id,
                script=steps,
                total=int(total),
                failed_requests=int(failed_requests),
                added_mono=time.monotonic(),
                added_wall=time.time(),
                endpoint=endpoint,
                metadata=metadata,
            )
            return self.batches[batch_id].to_openai(time.monotonic())

    def set_batch(
        self,
        batch_id: str,
        *,
        status: str,
        completed: int | None = None,
        failed: int | None = None,
        total: int | None = None,
    ) -> dict:
        """Move a batch (created if unknown) to `status` now; counts are fixed when given."""
        if status not in BATCH_STATUSES:
            raise FakeInputError(f"status must be one of {', '.join(BATCH_STATUSES)}")
        with self.lock:
            now = time.monotonic()
            batch = self.batches.get(batch_id)
            if batch is None:
                self._place(batch_id)
                batch = self.batches[batch_id] = Batch(
                    id=batch_id,
                    script=[(0.0, status)],
                    total=int(total if total is not None else 100),
                    failed_requests=0,
                    added_mono=now,
                    added_wall=time.time(),
                )
            else:
                elapsed = now - batch.added_mono
                batch.script = [s for s in batch.script if s[0] <= elapsed] + [(elapsed, status)]
            if total is not None:
                batch.total = int(total)
            # Counts given are kept as they are; otherwise they follow the status again.
            given = completed is not None or failed is not None
            batch.fixed_counts = (int(completed or 0), int(failed or 0)) if given else None
            return batch.to_openai(now)

    def batch(self, batch_id: str) -> dict | None:
        with self.lock:
            batch = self.batches.get(batch_id)
            return batch.to_openai(time.monotonic()) if batch else None

    def _place(self, batch_id: str) -> None:
        """Put the batch at the newest end of the list (a replaced batch moves there)."""
        if batch_id in self._position:
            self._order.remove(batch_id)
            self._position = {b: i for i, b in enumerate(self._order)}
        self._position[batch_id] = len(self._order)
        self._order.append(batch_id)

    def list_page(self, *, after: str | None, limit: int) -> tuple[list[dict], bool]:
        """One page of the list, newest first, after the batch `after` (an unknown id: an empty
        page), and whether older batches remain. Counts the request and when each batch was
        shown (the benchmark's "seen" times)."""
        with self.lock:
            now_mono, now = time.monotonic(), time.time()
            end = self._position.get(after, 0) if after else len(self._order)
            ids = self._order[max(0, end - limit) : end][::-1]
            self.list_requests += 1
            if after is None or after not in self._page_ends:
                self.list_walks += 1
            if ids:
                self._page_ends.add(ids[-1])
            for batch_id in ids:
                self.batch_listed_times.setdefault(batch_id, []).append(now)
            return [self.batches[b].to_openai(now_mono) for b in ids], end - limit > 0

    def list_batches(self) -> list[dict]:
        """Newest first, as OpenAI lists them."""
        with self.lock:
            now = time.monotonic()
            ordered = sorted(self.batches.values(), key=lambda b: b.added_mono, reverse=True)
            return [b.to_openai(now) for b in ordered]

    def reject_openai_key(self, key: str) -> None:
        with self.lock:
            self.invalid_openai_keys.add(fingerprint(key))

    def reject_keboola_token(self, token: str) -> None:
        with self.lock:
            self.invalid_keboola_tokens.add(fingerprint(token))

    def file_content(self, file_id: str) -> bytes | None:
        """The JSONL of a completed batch's output (one line per completed request) or error
        file (one per failed request), as OpenAI's Files API returns it; None for an unknown id."""
        with self.lock:
            now = time.monotonic()
            for batch in self.batches.values():
                body = batch.to_openai(now)
                if file_id not in (body.get("output_file_id"), body.get("error_file_id")):
                    continue
                completed, failed = body["request_counts"]["completed"], body["request_counts"]["failed"]
                errors = file_id == body.get("error_file_id")
                lines = []
                for i in range(failed if errors else completed):
                    number = i + 1 + (completed if errors else 0)
                    line: dict = {"id": f"batch_req_{number}", "custom_id": f"request-{number}"}
                    if errors:
                        line["response"] = None
                        line["error"] = {"code": "server_error", "message": "The request failed."}
                    else:
                        line["response"] = {
                            "status_code": 200,
                            "request_id": f"req_{number}",
                            "body": {
                                "id": f"chatcmpl-{number}",
                                "object": "chat.completion",
                                "model": "gpt-4o-mini-2024-07-18",
                                "choices": [
                                    {
                                        "index": 0,
                                        "message": {"role": "assistant", "content": f"Answer {number}"},
                                        "finish_reason": "stop",
                                    }
                                ],
                            },
                        }
                        line["error"] = None
                    lines.append(json.dumps(line))
                return "".join(f"{line}\n" for line in lines).encode()
        return None

    # --- control: Keboola ----------------------------------------------------------------
    def configure_keboola(
        self,
        *,
        start_after: float | None = None,
        finish_after: float | None = None,
        outcome: str | None = None,
    ) -> dict:
        """How jobs created from now on progress: created -> processing -> outcome."""
        with self.lock:
            if outcome is not None:
                if outcome not in KEBOOLA_OUTCOMES:
                    raise FakeInputError(f"outcome must be one of {', '.join(KEBOOLA_OUTCOMES)}")
                self.keboola.outcome = outcome
            if start_after is not None:
                self.keboola.start_after = float(start_after)
            if finish_after is not None:
                self.keboola.finish_after = float(finish_after)
            self.keboola.finish_after = max(self.keboola.finish_after, self.keboola.start_after)
            return vars(self.keboola).copy()

    def create_job(self, body: dict, token_fingerprint: str) -> KeboolaJob:
        with self.lock:
            job = KeboolaJob(
                id=str(next(self._job_ids)),
                created_mono=time.monotonic(),
                created_wall=time.time(),
                body=body,
                token_fingerprint=token_fingerprint,
                base_url=self.base_url,
                start_after=self.keboola.start_after,
                finish_after=self.keboola.finish_after,
                outcome=self.keboola.outcome,
            )
            self.jobs[job.id] = job
            return job

    def keboola_jobs(self) -> list[dict]:
        """Created jobs, oldest first, each as the API shows it plus `variables` (name -> value)."""
        with self.lock:
            now = time.monotonic()
            return [{**job.to_keboola(now), "variables": job.variables()} for job in self.jobs.values()]

    @property
    def keboola_jobs_created(self) -> int:
        with self.lock:
            return len(self.jobs)

    # --- control: faults and latency -----------------------------------------------------
    def fail(
        self,
        route: str,
        kind: str,
        *,
        times: int | None = None,
        seconds: float | None = None,
        retry_after: float | str | None = None,
        delay: float | None = None,
        target: str | None = None,
    ) -> None:
        """Make the next `times` requests (default 1) to `route`, or all of them for `seconds`,
        fail as `kind`. `target` limits it to one batch or job id. `delay` is the hang of
        "timeout"/"timeout_after_create" (default 35 s) or the extra latency of "slow"."""
        if route not in ROUTES:
            raise FakeInputError(f"route must be one of {', '.join(ROUTES)}")
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise FakeInputError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        if kind == "timeout_after_create" and route != "keboola.create":
            raise FakeInputError("timeout_after_create applies to keboola.create only")
        if times is None and seconds is None:
            times = 1
        if delay is None:
            delay = DEFAULT_SLOW_DELAY if kind == "slow" else DEFAULT_TIMEOUT_DELAY
        with self.lock:
            self.faults.append(
                Fault(
                    route=route,
                    kind=kind,
                    times=int(times) if times is not None else None,
                    until_mono=time.monotonic() + float(seconds) if seconds is not None else None,
                    retry_after=str(retry_after) if retry_after is not None else None,
                    delay=float(delay),
                    target=target,
                )
            )

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def take_fault(self, route: str, target: str | None) -> Fault | None:
        """The fault that applies to this request, consuming one of its `times`."""
        with self.lock:
            now = time.monotonic()
            self.faults = [f for f in self.faults if f.active(now)]
            for fault in self.faults:
                if fault.route == route and fault.target in (None, target):
                    if fault.times is not None and fault.until_mono is None:
                        fault.times -= 1
                    return fault
            return None

    def set_latency(self, seconds: float) -> None:
        with self.lock:
            self.latency = max(float(seconds), 0.0)

    # --- request log ---------------------------------------------------------------------
    def record(self, entry: dict) -> None:
        with self.lock:
            self.request_log.append(entry)
            self.request_count += 1
            if len(self.request_log) > MAX_LOGGED_REQUESTS:
                del self.request_log[: len(self.request_log) - MAX_LOGGED_REQUESTS]
            if entry.get("route") == "openai.retrieve" and entry.get("target"):
                self.batch_requests[entry["target"]] = self.batch_requests.get(entry["target"], 0) + 1
                self.batch_request_times.setdefault(entry["target"], []).append(entry["time"])

    def requests(self, route: str | None = None) -> list[dict]:
        """Every API request received (control calls excluded), oldest first. Keys and tokens
        appear only as `auth_fingerprint` (SHA-256)."""
        with self.lock:
            return [dict(e) for e in self.request_log if route is None or e.get("route") == route]

    def openai_requests_per_batch(self) -> dict[str, int]:
        """Single reads (GET /v1/batches/{id}) per batch; list pages are not in it."""
        with self.lock:
            return dict(self.batch_requests)

    def openai_observations_per_batch(self) -> dict[str, int]:
        """How often each batch was read or shown on a list page: a check by either way."""
        with self.lock:
            seen = dict(self.batch_requests)
            for batch_id, times in self.batch_listed_times.items():
                seen[batch_id] = seen.get(batch_id, 0) + len(times)
            return seen

    def timings(self) -> dict:
        """Wall-clock times for the benchmark: per batch, when each request arrived and when the
        batch turned terminal (None if it never does); per Keboola job, its config and creation."""
        with self.lock:
            batches = {}
            for batch_id, batch in self.batches.items():
                final_offset, final_status = batch.script[-1]
                terminal = final_status in BATCH_OUTCOMES
                batches[batch_id] = {
                    "requests": list(self.batch_request_times.get(batch_id, [])),
                    "listed": list(self.batch_listed_times.get(batch_id, [])),
                    "terminal_at": batch.added_wall + final_offset if terminal else None,
                }
            jobs = [
                {"id": job.id, "config": job.body.get("config"), "created_at": job.created_wall}
                for job in self.jobs.values()
            ]
            return {
                "batches": batches,
                "keboola_jobs": jobs,
                "list_requests": self.list_requests,
                "list_walks": self.list_walks,
            }

    def stats(self) -> dict:
        with self.lock:
            return {
                "requests": self.request_count,
                "openai_requests_per_batch": dict(self.batch_requests),
                "openai_list_requests": self.list_requests,
                "openai_list_walks": self.list_walks,
                "openai_listings_per_batch": {b: len(t) for b, t in self.batch_listed_times.items()},
                "keboola_jobs_created": len(self.jobs),
                "batches": len(self.batches),
                "active_faults": len(self.faults),
                "latency_ms": round(self.latency * 1000),
            }

    def reset(self) -> None:
        """Forget batches, jobs, faults, requests and rejected keys (latency stays)."""
        with self.lock:
            self._reset_data()
