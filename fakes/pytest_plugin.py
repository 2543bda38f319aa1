"""pytest fixtures that run the fake OpenAI + Keboola server (registered in the root conftest)."""

from __future__ import annotations

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


@pytest.fixture
def fake_openai_settings(settings, fake_servers: FakeServer) -> FakeServer:
    """Point the OpenAI SDK at the fake for this test."""
    settings.OPENAI_BASE_URL = fake_servers.openai_base_url
    return fake_servers
