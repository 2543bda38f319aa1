"""CI runs the suite on two configurations: the embedded defaults (SQLite and the file broker)
and PostgreSQL + Redis. Some tests set up the embedded defaults themselves, whatever the run's
configuration: they start a site of their own (`init`, `start`/`stop`, the demo, the production
settings, every command's bad arguments). Such a test proves the same thing in both runs, so it
is marked `embedded_defaults` and runs where the run is on the embedded defaults; a run on any
other database or broker deselects it and says so in its header.

A test so marked must not use the run's own database (pytest-django's fixtures or mark): that
part would differ between the runs, and collection refuses it.
"""

from __future__ import annotations

import pytest

MARK = "embedded_defaults"
_DATABASE_FIXTURES = {"_django_db_helper", "db", "transactional_db", "live_server", "django_db_setup"}


def _run_is_embedded() -> bool:
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"]
    return engine.endswith("sqlite3") and settings.CELERY_BROKER_URL.startswith("filesystem")


def pytest_report_header(config: pytest.Config) -> str | None:
    if _run_is_embedded():
        return None
    return f"tests marked {MARK} are left out: they set up SQLite and the file broker themselves"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    marked = [item for item in items if item.get_closest_marker(MARK) is not None]
    for item in marked:
        if item.get_closest_marker("django_db") is not None or _DATABASE_FIXTURES & set(item.fixturenames):
            raise pytest.UsageError(
                f"{item.nodeid} is marked {MARK} but uses the run's database (tests/configurations.py)"
            )
    if marked and not _run_is_embedded():
        config.hook.pytest_deselected(items=marked)
        left = set(map(id, marked))
        items[:] = [item for item in items if id(item) not in left]
