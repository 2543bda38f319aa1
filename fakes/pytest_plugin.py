"""pytest fixtures that run the fake OpenAI + Keboola server (registered in the root conftest)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from fakes.server import FakeServer


@pytest.fixture
def fake_servers() -> Iterator[FakeServer]:
    """A fresh fake on 127.0.0.1 (random port): `.url`, `.openai_base_url`, `.stack_url` and the
    control methods (`add_batch`, `set_batch`, `fail`, `requests`, `keboola_jobs`, ...)."""
    server = FakeServer().start()
    try:
        yield server
    finally:
        server.stop()


def outside_address() -> str:
    """An address of this machine that is not loopback: where a script with the network on
    reaches a server, as it would reach one on the internet."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent, a route is only chosen
        address = probe.getsockname()[0]
    except OSError:
        address = ""
    finally:
        probe.close()
    if not address or address.startswith("127."):
        reason = "this machine has no network interface besides loopback"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(f"{reason} (REQUIRE_SERVICES=1)")
        pytest.skip(reason)
    return address


@pytest.fixture
def outside_fake_servers() -> Iterator[FakeServer]:
    """A fresh fake on `outside_address()`: the one a sandboxed script with the network on can
    reach (it has a network of its own, without the machine's loopback)."""
    server = FakeServer(host=outside_address()).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_openai_settings(settings, fake_servers: FakeServer) -> FakeServer:
    """Point the OpenAI SDK at the fake for this test."""
    settings.OPENAI_BASE_URL = fake_servers.openai_base_url
    return fake_servers
