"""Settings for the test suite: the normal settings with safe defaults for anything unset.

Tests never read the developer's `.env`. CI selects PostgreSQL and Redis by setting
DATABASE_URL and CELERY_BROKER_URL in the environment.
"""

import os

os.environ["TECKOCHECKER_ENV_FILE"] = "none"
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("HTTPS_ONLY", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key-for-the-test-suite-only-0123456789")
os.environ.setdefault("FERNET_KEYS", "dGVzdC1mZXJuZXQta2V5LWZvci10aGUtc3VpdGUtMzI=")
os.environ.setdefault("ALLOW_LOCAL_URLS", "true")
os.environ.setdefault("MIN_POLL_INTERVAL", "1")
os.environ.setdefault("API_THROTTLE_USER", "100000/minute")
os.environ.setdefault("API_THROTTLE_ANON", "100000/minute")
os.environ.setdefault("OPENAI_TIMEOUT_SECONDS", "3")
os.environ.setdefault("KEBOOLA_TIMEOUT_SECONDS", "3")
os.environ.setdefault("WEBHOOK_TIMEOUT_SECONDS", "3")
# One queue per test run, so leftover messages of another run never reach our workers. A
# pytest-xdist worker is a run of its own: it inherits the environment of the controller, which
# loaded these settings (and chose a queue) first, so a queue chosen for another xdist worker id
# is replaced. Processes the tests start (Celery, manage.py) keep their parent's queue.
_xdist_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if os.environ.get("TECKOCHECKER_TEST_QUEUE_FOR", _xdist_worker) != _xdist_worker:
    os.environ.pop("CELERY_QUEUE", None)
os.environ.setdefault("CELERY_QUEUE", f"teckochecker-test-{os.getpid()}")
os.environ["TECKOCHECKER_TEST_QUEUE_FOR"] = _xdist_worker

from teckochecker.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast, tests only

# The suite's PostgreSQL sessions (its own and those of the processes it starts, which use these
# settings too) commit without waiting for the WAL to reach the disk: on a busy disk each commit
# otherwise waits ~15 ms for fsync, and the fault tests' workers commit hundreds of times a
# second. What other sessions see, and when, is unchanged; only a crash of the PostgreSQL server
# itself could lose the last commits, and no test crashes it (the restart test stops it with a
# fast shutdown, which writes them out first).
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c synchronous_commit=off"  # noqa: F405
