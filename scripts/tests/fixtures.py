"""Fixtures for tests anywhere that touch scripts (loaded by the root conftest)."""

import pytest


@pytest.fixture
def sent(monkeypatch):
    """The scripts tasks the services send, instead of a broker: {"run": [(run_id, options)],
    "build": [((script_id, token), options)]}."""
    from scripts import tasks

    messages = {"run": [], "build": []}
    monkeypatch.setattr(
        tasks.run_script, "apply_async", lambda args, **kw: messages["run"].append((args[0], kw))
    )
    monkeypatch.setattr(
        tasks.build_environment, "apply_async", lambda args, **kw: messages["build"].append((args, kw))
    )
    return messages
