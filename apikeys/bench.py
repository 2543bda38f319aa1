"""What an API key costs per request, in this process against a fresh SQLite database under a
temporary DATA_DIR (no web server): GET /api/scripts with a staff Token, the same with a full
API key (hash lookup, plus the rate limit's one-row UPDATE when API_KEY_RATE_LIMIT is on), and
POST /api/scripts/{slug}/trigger (a run row; the task is not sent).

`python -m apikeys.bench [requests]` prints p50/p95 per figure; run it once with the default
rate limit and once with `API_KEY_RATE_LIMIT=0/minute` to see what the count itself costs.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time


def _setup() -> None:
    os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="apikeys-bench-")
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ["DJANGO_SETTINGS_MODULE"] = "teckochecker.test_settings"
    os.environ.setdefault("API_KEY_RATE_LIMIT", "1000000/minute")  # counted, never refused
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _timed(client, method: str, url: str, n: int) -> tuple[float, float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = getattr(client, method)(url)
        times.append((time.perf_counter() - start) * 1000)
        if response.status_code not in (200, 202):
            raise SystemExit(f"{method.upper()} {url}: HTTP {response.status_code}")
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95)]


def main(argv: list[str]) -> None:
    n = int(argv[1]) if len(argv) > 1 else 300
    _setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    from apikeys.services import apikey_create
    from scripts import tasks
    from scripts.models import EnvState, Script

    tasks.run_script.apply_async = lambda *args, **kwargs: None  # no broker: the request path only
    user = get_user_model().objects.create_user("bench", password="bench-password-1", is_staff=True)
    _key, raw = apikey_create(name="bench", owner=user, scope="full")
    Script.objects.create(
        name="bench", slug="bench", python_version="3.11", url_trigger=True, env_state=EnvState.READY
    )
    token = APIClient()
    token.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    key = APIClient()
    key.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    print(f"API_KEY_RATE_LIMIT={settings.API_KEY_RATE_LIMIT}, {n} requests each, SQLite")
    for label, client, method, url in (
        ("GET /api/scripts, Token", token, "get", "/api/scripts"),
        ("GET /api/scripts, API key", key, "get", "/api/scripts"),
        ("POST /api/scripts/bench/trigger, API key", key, "post", "/api/scripts/bench/trigger"),
    ):
        _timed(client, method, url, 20)  # warm up
        p50, p95 = _timed(client, method, url, n)
        print(f"{label:<42} p50 {p50:7.2f} ms  p95 {p95:7.2f} ms")


if __name__ == "__main__":
    main(sys.argv)
