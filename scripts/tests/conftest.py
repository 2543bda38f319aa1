import pytest


@pytest.fixture(autouse=True)
def scripts_dir(tmp_path, settings):
    """Each test's scripts live in its own folder."""
    settings.SCRIPTS_DIR = tmp_path / "scripts"
    return settings.SCRIPTS_DIR


@pytest.fixture
def sent(monkeypatch):
    """The tasks the services send (after commit), instead of a broker: {"run": [...], "build": [...]}."""
    from scripts import tasks

    messages = {"run": [], "build": []}
    monkeypatch.setattr(
        tasks.run_script, "apply_async", lambda args, **kw: messages["run"].append((args[0], kw))
    )
    monkeypatch.setattr(
        tasks.build_environment, "apply_async", lambda args, **kw: messages["build"].append((args, kw))
    )
    return messages
