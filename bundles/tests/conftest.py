import pytest


@pytest.fixture(autouse=True)
def scripts_dir(tmp_path, settings):
    """Each test's scripts live in its own folder."""
    settings.SCRIPTS_DIR = tmp_path / "scripts"
    return settings.SCRIPTS_DIR
