"""One stdlib HTTP server that speaks OpenAI's Batch API and Keboola's Job Queue API.

    OpenAI   GET  /v1/batches/{id}, GET /v1/batches?limit=&after=   (Authorization: Bearer <key>)
             GET  /v1/files/{id}/content (a batch's output or error file; not in the spec copy)
    Keboola  POST /jobs, GET /jobs/{id}, GET /search/jobs             (X-StorageApi-Token: <token>)
             GET  /v2/storage/buckets (Storage API, for the script templates; not in the spec)
    Control  /_control/...  (JSON; see `_CONTROL` below and `fakes.client.RemoteFake`)

`FakeServer` is also the Python control surface (it is a `FakeState`).
"""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from fakes.state import FakeInputError, FakeState, fingerprint

logger = logging.getLogger(__name__)

_OPENAI_ERRORS = {
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", None),
    400: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
}
_JOB_STATUSES = {
    "created",
    "waiting",
    "processing",
    "success",
    "warning",
    "error",
    "terminating",
    "terminated",
    "cancelled",
}


class _Abort(Exception):
    """Stop handling this request without answering (the server is stopping)."""


def _route(method: str, path: str) -> tuple[str | None, str | None]:
    """(route name, batch or job id) for an API path."""
    parts = [unquote(p) for p in path.strip("/").split("/")]
    if method == "GET" and parts[:2] == ["v1", "batches"]:
        if len(parts) == 2:
            return "openai.list", None
        if len(parts) == 3 and parts[2]:
            return "openai.retrieve", parts[2]
    if method == "GET" and len(parts) == 4 and parts[:2] == ["v1", "files"] and parts[3] == "content":
        return "openai.file_content", parts[2]
    if method == "GET" and parts == ["v2", "storage", "buckets"]:
        return "keboola.storage_buckets", None
    if parts[:1] == ["jobs"]:
        if method == "POST" and len(parts) == 1:
            return "keboola.create", None
        if method == "GET" and len(parts) == 2 and parts[1]:
            return "keboola.get", parts[1]
    if method == "GET" and parts == ["search", "jobs"]:
        return "keboola.search", None
    return None, None


def _create_job_problem(body: object) -> str | None:
    """Why a POST /jobs body does not match the createJob schema, or None."""
    if not isinstance(body, dict):
        return "The request body must be a JSON object."
    if not isinstance(body.get("component"), str) or not body["component"]:
        return 'The "component" field is required and must be a string.'
    if "mode" in body and body["mode"] not in ("run", "debug", "forceRun"):
        return 'The "mode" field must be one of "run", "debug", "forceRun".'
    for name in ("config", "tag", "branchId", "variableValuesId", "delayedStartTime"):
        if name in body and not isinstance(body[name], str):
            return f'The "{name}" field must be a string.'
    if "configRowIds" in body and not (
        isinstance(body["configRowIds"], list) and all(isinstance(i, str) for i in body["configRowIds"])
    ):
        return 'The "configRowIds" field must be an array of strings.'
    if "configData" in body and not isinstance(body["configData"], dict):
        return 'The "configData" field must be an object.'
    if "variableValuesData" in body:
        data = body["variableValuesData"]
        values = data.get("values") if isinstance(data, dict) else None
        if not isinstance(values, list):
            return 'The "variableValuesData.values" field is required and must be an array.'
        for item in values:
            if not (isinstance(item, dict) and isinstance(item.get("name"), str)):
                return 'Each variable value needs a string "name".'
            if not isinstance(item.get("value"), str):
                return f'The value of variable "{item["name"]}" must be a string.'
    if "delay" in body and not (isinstance(body["delay"], int) and body["delay"] >= 0):
        return 'The "delay" field must be a non-negative integer.'
    return None


def _first(query: dict[str, list[str]], *names: str) -> list[str]:
    return [value for name in names for value in query.get(name, [])]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms), which would add a latency the real APIs do not have.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: object) -> None:
        pass  # requests are in the fake's own log; stderr noise helps nobody

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- plumbing ------------------------------------------------------------------------
    @property
    def state(self) -> FakeState:
        return self.server.state

    def _send_json(self, status: int, payload: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self.state.stopping.wait(seconds):
            raise _Abort

    def _reset_connection(self) -> None:
        # SO_LINGER 0: close() sends RST, the client sees "connection reset by peer".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            if split.path.startswith("/_control/"):
                self._control(method, split.path, query, raw)
            else:
                self._api(method, split.path, query, raw)
        except _Abort:
            self.close_connection = True

    # --- vendor APIs ---------------------------------------------------------------------
    def _openai_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        error_type, code = _OPENAI_ERRORS.get(status, ("invalid_request_error", None))
        body = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
        self._send_json(status, body, headers)

    def _keboola_error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        body = {"error": message, "code": status, "status": "error", "exceptionId": f"fake-{time.time_ns()}"}
        self._send_json(status, body, headers)

    def _api(self, method: str, path: str, query: dict, raw: bytes) -> None:
        route, target = _route(method, path)
        vendor = "openai" if path.startswith("/v1/") else "keboola"
        secret = self._secret(vendor)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = "<not JSON>"
        self.state.record(
            {
                "time": time.time(),
                "method": method,
                "path": path,
                "query": query,
                "route": route,
                "target": target,
                "body": body,
                "auth_fingerprint": fingerprint(secret) if secret else None,
            }
        )
        error = self._openai_error if vendor == "openai" else self._keboola_error
        if route is None:
            return error(404, f"Unknown route {method} {path}")
        self._wait(self.state.latency)
        fault = self.state.take_fault(route, target)
        if fault is not None:
            if fault.kind == "reset":
                return self._reset_connection()
            if fault.kind in ("timeout", "slow"):
                self._wait(fault.delay)
            elif fault.kind == "429":
                return error(
                    429,
                    "Rate limit reached. Please try again later.",
                    {"Retry-After": fault.retry_after or "1"},
                )
            elif fault.kind == "500":
                return error(500, "The server had an error while processing your request.")
            elif fault.kind == "401":
                return self._unauthorized(vendor, secret)
            elif fault.kind == "404":
                return error(404, "Not found.")
        if not secret or fingerprint(secret) in self._rejected(vendor):
            return self._unauthorized(vendor, secret)
        if route == "openai.retrieve":
            return self._retrieve_batch(target)
        if route == "openai.list":
            return self._list_batches(query)
        if route == "openai.file_content":
            return self._file_content(target)
        if route == "keboola.storage_buckets":
            with self.state.lock:
                return self._send_json(200, list(self.state.storage_buckets))
        if route == "keboola.create":
            return self._create_job(
                body, secret, hang=fault.delay if fault and fault.kind == "timeout_after_create" else 0
            )
        if route == "keboola.get":
            return self._get_job(target)
        return self._search_jobs(query)

    def _secret(self, vendor: str) -> str:
        if vendor == "keboola":
            return self.headers.get("X-StorageApi-Token", "").strip()
        scheme, _, key = self.headers.get("Authorization", "").partition(" ")
        return key.strip() if scheme.lower() == "bearer" else ""

    def _rejected(self, vendor: str) -> set[str]:
        with self.state.lock:
            return set(
                self.state.invalid_openai_keys if vendor == "openai" else self.state.invalid_keboola_tokens
            )

    def _unauthorized(self, vendor: str, secret: str) -> None:
        if vendor == "keboola":
            return self._keboola_error(401, "Invalid access token")
        if not secret:
            return self._openai_error(401, "You didn't provide an API key.")
        # Like OpenAI, echo part of the key back: callers must not show this body.
        shown = f"{secret[:8]}{'*' * 10}{secret[-4:]}" if len(secret) > 12 else secret
        self._openai_error(
            401,
            f"Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com/account/api-keys.",
        )

    def _retrieve_batch(self, batch_id: str) -> None:
        batch = self.state.batch(batch_id)
        if batch is None:
            return self._openai_error(404, f"No batch found with id '{batch_id}'.")
        self._send_json(200, batch)

    def _file_content(self, file_id: str) -> None:
        content = self.state.file_content(file_id)
        if content is None:
            return self._openai_error(404, f"No such File object: {file_id}")
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)

    def _list_batches(self, query: dict) -> None:
        try:
            limit = int((query.get("limit") or ["20"])[0])
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100:
            return self._openai_error(400, "Invalid 'limit': must be an integer between 1 and 100.")
        after = (query.get("after") or [""])[0] or None
        page, has_more = self.state.list_page(after=after, limit=limit)
        body: dict = {"object": "list", "data": page, "has_more": has_more}
        if page:
            body["first_id"], body["last_id"] = page[0]["id"], page[-1]["id"]
        self._send_json(200, body)

    def _create_job(self, body: object, token: str, hang: float) -> None:
        problem = _create_job_problem(body)
        if problem:
            return self._keboola_error(400, problem)
        job = self.state.create_job(dict(body), fingerprint(token))  # type: ignore[arg-type]
        self._wait(hang)  # timeout_after_create: the job exists, the answer comes too late
        self._send_json(201, job.to_keboola(time.monotonic()))

    def _get_job(self, job_id: str) -> None:
        with self.state.lock:
            job = self.state.jobs.get(job_id)
            payload = job.to_keboola(time.monotonic()) if job else None
        if payload is None:
            return self._keboola_error(404, f'Job "{job_id}" not found')
        self._send_json(200, payload)

    def _search_jobs(self, query: dict) -> None:
        components = set(_first(query, "componentId[]", "componentId", "component[]", "component"))
        configs = set(_first(query, "configId[]", "configId", "config[]", "config"))
        statuses = set(_first(query, "status[]", "status"))
        ids = set(_first(query, "id[]", "id"))
        if statuses - _JOB_STATUSES:
            return self._keboola_error(400, "Invalid job status filter.")
        since = None
        if query.get("createdTimeFrom"):
            try:
                since = datetime.fromisoformat(query["createdTimeFrom"][0].replace(" ", "+"))
            except ValueError:
                return self._keboola_error(400, "Invalid createdTimeFrom value.")
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
        try:
            limit = int((query.get("limit") or ["100"])[0])
            offset = int((query.get("offset") or ["0"])[0])
        except ValueError:
            return self._keboola_error(400, "Invalid limit or offset.")
        with self.state.lock:
            now = time.monotonic()
            jobs = [j.to_keboola(now) for j in self.state.jobs.values()]
        found = [
            job
            for job in jobs
            if (not components or job["component"] in components)
            and (not configs or job["config"] in configs)
            and (not statuses or job["status"] in statuses)
            and (not ids or job["id"] in ids)
            and (since is None or datetime.fromisoformat(job["createdTime"]) >= since)
        ]
        found.sort(key=lambda j: int(j["id"]), reverse=(query.get("sortOrder") or ["desc"])[0] != "asc")
        self._send_json(200, found[offset : offset + max(limit, 0)])

    # --- control -------------------------------------------------------------------------
    def _control(self, method: str, path: str, query: dict, raw: bytes) -> None:
        try:
            body = json.loads(raw) if raw else {}
            result = self._run_control(method, path.removeprefix("/_control/").strip("/"), query, body)
        except (FakeInputError, ValueError, TypeError, KeyError) as exc:
            return self._send_json(400, {"error": str(exc)})
        if result is _NOT_FOUND:
            return self._send_json(404, {"error": f"Unknown control call {method} {path}"})
        self._send_json(200, result)

    def _run_control(self, method: str, name: str, query: dict, body: dict) -> object:
        state = self.state
        if (method, name) == ("GET", "health"):
            return {"ok": True, "url": state.base_url}
        if (method, name) == ("POST", "batches"):
            items = body["batches"] if "batches" in body else [body]
            return [_apply_batch(state, item) for item in items]
        if (method, name) == ("GET", "batches"):
            return state.list_batches()
        if method == "GET" and name.startswith("batches/"):
            batch = state.batch(unquote(name.removeprefix("batches/")))
            return batch if batch is not None else _NOT_FOUND
        if (method, name) == ("POST", "faults"):
            state.fail(body.pop("route"), body.pop("kind"), **body)
            return {"faults": len(state.faults)}
        if (method, name) == ("DELETE", "faults"):
            state.clear_faults()
            return {"faults": 0}
        if (method, name) == ("GET", "requests"):
            return state.requests((query.get("route") or [None])[0])
        if (method, name) == ("GET", "keboola/jobs"):
            return state.keboola_jobs()
        if (method, name) == ("POST", "keboola"):
            return state.configure_keboola(**body)
        if (method, name) == ("POST", "latency"):
            state.set_latency(float(body["ms"]) / 1000)
            return {"latency_ms": body["ms"]}
        if (method, name) == ("POST", "reject"):
            if body.get("openai_key"):
                state.reject_openai_key(body["openai_key"])
            if body.get("keboola_token"):
                state.reject_keboola_token(body["keboola_token"])
            return {"ok": True}
        if (method, name) == ("GET", "stats"):
            return state.stats()
        if (method, name) == ("POST", "webhooks"):
            sender = state.send_webhooks(url=body["url"], secret=body["secret"])
            return {"ok": True, "url": sender.url}
        if (method, name) == ("GET", "webhooks"):
            sender = getattr(state, "_webhooks", None)
            return {"sent": sender.sent if sender else []}
        if (method, name) == ("GET", "timings"):
            return state.timings()
        if (method, name) == ("POST", "reset"):
            state.reset()
            return {"ok": True}
        return _NOT_FOUND


_NOT_FOUND = object()


def _apply_batch(state: FakeState, item: dict) -> dict:
    item = dict(item)
    batch_id = item.pop("id")
    if "status" in item:
        return state.set_batch(batch_id, **item)
    return state.add_batch(batch_id, **item)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default listen backlog is 5. A worker opens up to OPENAI_MAX_CONCURRENCY
    # connections at once (two workers: 64), and a connection the full backlog drops waits for
    # the kernel's SYN-ACK retries (1, 3, 7 s), a delay the real APIs do not add. The 10,000-job
    # benchmark had such drops (bench reports them as listen overflows).
    request_queue_size = 1024
    state: FakeState

    def handle_error(self, request: object, client_address: object) -> None:
        logger.debug("Fake server connection error from %s", client_address, exc_info=True)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class FakeServer(FakeState):
    """A running fake (after `start()`): `.url`, `.openai_base_url`, `.stack_url`, plus every
    control method of `FakeState` (add_batch, set_batch, fail, requests, keboola_jobs, ...)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0) -> None:
        super().__init__(latency=latency)
        self._host, self._port = host, port
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def openai_base_url(self) -> str:
        return f"{self.base_url}/v1"

    @property
    def stack_url(self) -> str:
        return self.base_url

    def start(self) -> FakeServer:
        self.stopping.clear()
        server_class = _HTTPServer6 if ":" in self._host else _HTTPServer
        self._httpd = server_class((self._host, self._port), _Handler)
        self._httpd.state = self
        host, port = self._httpd.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        self.base_url = f"http://{shown}:{port}"
        # A short poll interval keeps stop() (and so every test using the fixture) fast.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-servers", daemon=True
        )
        self._thread.start()
        return self

    def send_webhooks(self, *, url: str, secret: str):
        """From now on, POST a signed OpenAI `batch.*` event to `url` when a batch turns terminal."""
        from fakes.webhooks import WebhookSender

        if getattr(self, "_webhooks", None):
            self._webhooks.stop()
        self._webhooks = WebhookSender(self, url=url, secret=secret).start()
        return self._webhooks

    def stop(self) -> None:
        """Stop serving; requests hanging in a fault or latency are cut off."""
        if getattr(self, "_webhooks", None):
            self._webhooks.stop()
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def serve_until(self, event: threading.Event) -> None:
        """Block until `event` is set (used by `manage.py fakeservers`)."""
        while not event.wait(0.5):
            pass

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
