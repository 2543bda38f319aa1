"""`manage.py fakeservers`: run the fake OpenAI + Keboola server until SIGINT/SIGTERM."""

from __future__ import annotations

import ipaddress
import signal
import threading

from django.core.management.base import CommandError, CommandParser

from fakes.server import FakeServer
from teckochecker.cli import TeckoCommand

DEMO_BATCHES = [
    ("batch_demo_fast", 15, "completed", 50, 0),
    ("batch_demo_mixed", 30, "completed", 200, 12),
    ("batch_demo_slow", 55, "completed", 500, 0),
    ("batch_demo_failed", 20, "failed", 40, 0),
    ("batch_demo_expired", 45, "expired", 120, 0),
]


class Command(TeckoCommand):
    help = (
        "Run a local fake of OpenAI's Batch API and Keboola's Job Queue API on one port. "
        "Point OPENAI_BASE_URL at <url>/v1 and use <url> as the Keboola stack URL."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8001, help="Port (0 picks a free one). Default 8001.")
        parser.add_argument("--host", default="127.0.0.1", help="Bind address. Default 127.0.0.1.")
        parser.add_argument(
            "--allow-remote", action="store_true", help="Allow binding a non-loopback address."
        )
        parser.add_argument("--latency-ms", type=float, default=0.0, help="Latency added to every API call.")
        parser.add_argument(
            "--demo", action="store_true", help="Preload batches batch_demo_* that finish within a minute."
        )

    def handle(self, *args, **options) -> None:
        host = options["host"]
        if not options["allow_remote"] and not _is_loopback(host):
            raise CommandError(f"{host} is not a loopback address; pass --allow-remote to bind it anyway.")
        server = FakeServer(host=host, port=options["port"], latency=options["latency_ms"] / 1000)
        try:
            server.start()
        except OSError as exc:
            raise CommandError(f"Cannot listen on {host}:{options['port']}: {exc.strerror or exc}") from None
        if options["demo"]:
            self.load_demo(server)
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        self.stdout.write(f"Fake OpenAI + Keboola listening on {server.url}")
        self.stdout.write(f"  OPENAI_BASE_URL={server.openai_base_url}")
        self.stdout.write(f"  Keboola stack URL: {server.stack_url}   (needs ALLOW_LOCAL_URLS=true)")
        self.stdout.flush()
        try:
            server.serve_until(stop)
        finally:
            server.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stdout.write("Fake servers stopped.")

    def load_demo(self, server: FakeServer) -> None:
        for batch_id, seconds, outcome, total, failed in DEMO_BATCHES:
            server.add_batch(
                batch_id, finish_after=seconds, outcome=outcome, total=total, failed_requests=failed
            )
            self.stdout.write(f"  {batch_id}: {outcome} after {seconds}s ({total} requests)")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
