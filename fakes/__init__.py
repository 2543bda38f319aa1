"""Local fake OpenAI Batch API and Keboola Job Queue servers (tests, demos, benchmarks).

    with FakeServer() as fake:                      # or the `fake_servers` pytest fixture
        fake.add_batch("batch_a", finish_after=2, outcome="completed", total=100)
        fake.fail("keboola.create", "timeout_after_create", delay=2)
        ... point OPENAI_BASE_URL at fake.openai_base_url, use fake.stack_url as the stack ...
        fake.keboola_jobs(), fake.requests("openai.retrieve")

A fake in another process (`manage.py fakeservers`) is scripted with `RemoteFake(url)`.
"""

from fakes.client import RemoteFake
from fakes.server import FakeServer
from fakes.state import fingerprint

__all__ = ["FakeServer", "RemoteFake", "fingerprint"]
