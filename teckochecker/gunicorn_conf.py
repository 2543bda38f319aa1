"""gunicorn settings that follow ours; every way of serving the API loads it
(`manage.py start`, the Dockerfile, docker-compose.yml): `gunicorn -c python:teckochecker.gunicorn_conf`.

Threads: every open live stream (GET /api/events, GET /api/runs/{id}/stream) holds one thread
for its life, and at most LIVE_MAX_STREAMS are open at once (one more gets 503). With
LIVE_MAX_STREAMS + WEB_THREADS threads the rest of the API always has WEB_THREADS of its own.
"""

import os
import signal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teckochecker.settings")

from django.conf import settings  # noqa: E402

threads = settings.LIVE_MAX_STREAMS + settings.WEB_THREADS


def post_worker_init(worker):
    """When the worker is told to stop, open streams end at once (their browsers reconnect to
    the next worker and resume) instead of holding the shutdown for the graceful timeout."""
    from live.streams import stop_streams

    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        stop_streams()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)
