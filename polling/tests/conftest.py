import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@pytest.fixture
def dispatch(monkeypatch):
    """Run the dispatcher once, as beat does; returns the job ids it sent (nothing is queued)."""
    from polling import tasks
    from polling.services.schedules import jobs_dispatch_due

    def run(**kwargs) -> list[int]:
        sent: list[list] = []
        monkeypatch.setattr(tasks.poll_jobs, "apply_async", lambda args, **_: sent.append(args))
        jobs_dispatch_due(**kwargs)
        run.messages = sent
        return [job_id for ids, _token in sent for job_id in ids]

    return run


@pytest.fixture
def fake(fake_openai_settings, settings):
    """The fake OpenAI and Keboola servers; a bad key or batch fails a job after three checks."""
    settings.POLL_FAILURE_LIMIT = 3
    return fake_openai_settings


class Receiver:
    """A tiny HTTP server recording JSON POSTs (a webhook receiver for tests)."""

    def __init__(self, status=200):
        self.calls, self.status = [], status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.calls.append({"headers": dict(self.headers), "body": body})
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
