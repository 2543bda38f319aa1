# TeckoChecker image: one image for the web server, the Celery workers and Celery beat
# (docker-compose.yml picks the command). Configuration comes from the environment (.env).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/app/data

# bubblewrap sandboxes users' script runs (the scripts-worker service); slirp4netns gives a run
# with the network on a network of its own that cannot reach the service's PostgreSQL or Redis.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap slirp4netns \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --user-group teckochecker

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

# Only the code: never a developer's .env, .venv or data directory.
COPY --chown=teckochecker:teckochecker manage.py pyproject.toml ./
COPY --chown=teckochecker:teckochecker teckochecker/ teckochecker/
COPY --chown=teckochecker:teckochecker secrets_vault/ secrets_vault/
COPY --chown=teckochecker:teckochecker apikeys/ apikeys/
COPY --chown=teckochecker:teckochecker bundles/ bundles/
COPY --chown=teckochecker:teckochecker polling/ polling/
COPY --chown=teckochecker:teckochecker scripts/ scripts/
COPY --chown=teckochecker:teckochecker live/ live/
COPY --chown=teckochecker:teckochecker web/ web/
COPY --chown=teckochecker:teckochecker fakes/ fakes/
COPY --chown=teckochecker:teckochecker bench/ bench/
RUN mkdir -p "$DATA_DIR" && chown teckochecker:teckochecker "$DATA_DIR"

USER teckochecker

# Static files are built into the image; DEBUG=true only lends this one step development keys.
RUN DEBUG=true TECKOCHECKER_ENV_FILE=none python -W ignore manage.py collectstatic --no-input -v 0

EXPOSE 8000

# /api/health is public and exempt from the HTTPS redirect; the Host header must be allowed.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; h = os.environ.get('ALLOWED_HOSTS', '127.0.0.1').split(',')[0].strip().lstrip('.'); h = '127.0.0.1' if h in ('', '*') else h; u.urlopen(u.Request('http://127.0.0.1:8000/api/health', headers={'Host': h}), timeout=4)"]

# One process with threads keeps memory small; scale with more containers, not more workers.
CMD ["gunicorn", "teckochecker.wsgi:application", "--bind", "0.0.0.0:8000", "--config", "python:teckochecker.gunicorn_conf", "--workers", "1", "--access-logfile", "-"]
