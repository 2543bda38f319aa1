"""TeckoChecker settings. Every value comes from the environment; `.env` is read when present.

`.env.example` lists each variable with a one-line comment. The helpers in `envconfig` fail
loudly, naming the variable, when a value cannot be used.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import dj_database_url
from dotenv import load_dotenv

from teckochecker import __version__
from teckochecker.envconfig import (
    ConfigError,
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_str,
    fernet_keys_problem,
    looks_like_placeholder,
)

BASE_DIR = Path(__file__).resolve().parent.parent

# `.env` never overrides a variable that is already set in the real environment.
_env_file = os.environ.get("TECKOCHECKER_ENV_FILE", str(BASE_DIR / ".env"))
if _env_file.lower() != "none" and Path(_env_file).is_file():
    load_dotenv(_env_file, override=False)

VERSION = __version__
DEBUG = env_bool("DEBUG", False)
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "data"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

# --- Keys -----------------------------------------------------------------------------------
_KEY_HELP = (
    "Run `python manage.py init` to write a .env with fresh keys, or generate one with "
    '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`.'
)
_DEV_SECRET_KEY = "insecure-development-only-secret-key-do-not-use-in-production"
_DEV_FERNET_KEY = "insecure-development-only-fernet-key"

SECRET_KEY = env_str("SECRET_KEY")
if looks_like_placeholder(SECRET_KEY):
    if not DEBUG:
        raise ConfigError(f"SECRET_KEY is missing or a placeholder; DEBUG is off. {_KEY_HELP}")
    warnings.warn("SECRET_KEY is not set: using an insecure development key.", stacklevel=1)
    SECRET_KEY = _DEV_SECRET_KEY

# Newest key first. Older keys still decrypt; `manage.py secret rotate-keys` re-encrypts.
FERNET_KEYS = env_list("FERNET_KEYS")
if not FERNET_KEYS or any(looks_like_placeholder(k) for k in FERNET_KEYS):
    if not DEBUG:
        raise ConfigError(f"FERNET_KEYS is missing or a placeholder; DEBUG is off. {_KEY_HELP}")
    warnings.warn("FERNET_KEYS is not set: using an insecure development key.", stacklevel=1)
    FERNET_KEYS = [_DEV_FERNET_KEY]
elif _problem := fernet_keys_problem(FERNET_KEYS):
    raise ConfigError(f"{_problem} {_KEY_HELP}")

# --- HTTP -----------------------------------------------------------------------------------
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# HTTPS_ONLY turns on secure cookies, HSTS and the HTTPS redirect. It defaults to on in
# production mode; a laptop serving plain http://127.0.0.1 sets it to false in its .env.
HTTPS_ONLY = env_bool("HTTPS_ONLY", not DEBUG)
SESSION_COOKIE_SECURE = HTTPS_ONLY
CSRF_COOKIE_SECURE = HTTPS_ONLY
SECURE_SSL_REDIRECT = HTTPS_ONLY
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS_ONLY else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS_ONLY
SECURE_HSTS_PRELOAD = HTTPS_ONLY
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_PROXY", False) else None
SECURE_REDIRECT_EXEMPT = [r"^api/health$"]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 1024 * 1024, minimum=1024)

INSTALLED_APPS = [
    # The admin's modules are loaded by the URLconf (admin.autodiscover() in urls.py), i.e. only
    # in the web server: the workers do not carry the admin, its forms and what they import.
    "django.contrib.admin.apps.SimpleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_celery_beat",
    "teckochecker",
    "secrets_vault",
    "apikeys",
    "polling",
    "scripts",
    "bundles",
    "live",
    "web",
    "fakes",
    "bench",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "teckochecker.urls"
WSGI_APPLICATION = "teckochecker.wsgi.application"
APPEND_SLASH = False  # API clients do not follow redirects; URLs accept both forms instead.

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'teckochecker.sqlite3'}")
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60, minimum=0))
except Exception as exc:  # dj-database-url raises several types for a malformed URL
    raise ConfigError(f"DATABASE_URL is not a valid database URL: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while a worker writes; IMMEDIATE avoids lock upgrades
    # that SQLite would otherwise resolve with "database is locked".
    _db["CONN_MAX_AGE"] = 0
    _db["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    _db["TEST"] = {"NAME": str(DATA_DIR / f"test-{os.getpid()}.sqlite3")}
elif _db["ENGINE"] == "django.db.backends.postgresql":
    _db["CONN_HEALTH_CHECKS"] = True
    # A worker whose link to the server is cut would otherwise wait on the dead socket for the
    # kernel's two hours of TCP keepalive (or ~15 minutes of retransmits while a query is
    # unanswered). Probing after DB_KEEPALIVES_IDLE quiet seconds, then every
    # DB_KEEPALIVES_INTERVAL seconds, it gives up after DB_KEEPALIVES_COUNT lost probes; the
    # user timeout bounds unacknowledged sends the same way. Options in DATABASE_URL win.
    _keepalives_idle = env_int("DB_KEEPALIVES_IDLE", 30, minimum=1)
    _keepalives_interval = env_int("DB_KEEPALIVES_INTERVAL", 10, minimum=1)
    _keepalives_count = env_int("DB_KEEPALIVES_COUNT", 3, minimum=1)
    _db["OPTIONS"] = {
        "keepalives": 1,
        "keepalives_idle": _keepalives_idle,
        "keepalives_interval": _keepalives_interval,
        "keepalives_count": _keepalives_count,
        "tcp_user_timeout": (_keepalives_idle + _keepalives_interval * _keepalives_count) * 1000,
        **_db.get("OPTIONS", {}),
    }
    # One test database per test run, so two runs on one server never collide.
    _db["TEST"] = {"NAME": f"test_{_db['NAME']}_{os.getpid()}"}
else:
    raise ConfigError("DATABASE_URL must be a sqlite:// or postgresql:// URL.")
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True  # serve app static files without a collectstatic step

LOGIN_URL = "/admin/login/"

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first, so an anonymous request gets 401 with `WWW-Authenticate: Token`. API keys
    # (`Bearer`) also enforce their scope, for every view (apikeys/authentication.py).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "apikeys.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
        "apikeys.throttling.ApiKeyRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("API_THROTTLE_ANON", "120/minute"),
        "user": env_str("API_THROTTLE_USER", "3000/minute"),
        # OpenAI may deliver many batch events at once; signatures are checked before any work.
        # OpenAI webhook deliveries that fail verification, per client address; a verified
        # delivery is never throttled (polling/api.py, OpenAIWebhookView).
        "webhook": env_str("API_THROTTLE_WEBHOOK", "120/minute"),
    },
    "EXCEPTION_HANDLER": "teckochecker.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DATETIME_FORMAT": "iso-8601",
    "UNAUTHENTICATED_USER": None,
}
# Requests per API key (`N/second|minute|hour|day`; 0 turns it off), counted in the database so
# that every web process shares one count.
API_KEY_RATE_LIMIT = env_str("API_KEY_RATE_LIMIT", "60/minute")
if not re.fullmatch(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)", API_KEY_RATE_LIMIT):
    raise ConfigError(f"API_KEY_RATE_LIMIT must look like 60/minute (got {API_KEY_RATE_LIMIT!r}).")
SPECTACULAR_SETTINGS = {
    "TITLE": "TeckoChecker API",
    "DESCRIPTION": "Watch OpenAI batches and trigger a Keboola job exactly once when they finish.",
    "VERSION": __version__,
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "PREPROCESSING_HOOKS": ["teckochecker.api.drop_slash_duplicates"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "teckochecker.api.document_errors",
    ],
    "COMPONENT_SPLIT_REQUEST": True,
    # One name per choice set, so `check --deploy` (which builds the schema) stays warning-free.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "polling.models.JobStatus",
        "HealthStatusEnum": ["healthy", "unhealthy"],
        "ConnectionStateEnum": ["connected", "disconnected"],
        "RunStateEnum": "scripts.models.RunState",
        "EnvStateEnum": "scripts.models.EnvState",
        "ApiKeyScopeEnum": "apikeys.models.ApiKeyScope",
        "ApiKeyStateEnum": ["active", "expired", "revoked"],
    },
}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ---------------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    CELERY_BROKER_URL = "filesystem://localhost/"  # the same, without kombu's "no hostname" warning
    if os.environ.get("CELERY_BROKER_URL"):
        # Celery reads the variable itself, ahead of this setting, in every process.
        os.environ["CELERY_BROKER_URL"] = CELERY_BROKER_URL
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "teckochecker")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = DATA_DIR / "broker" / CELERY_TASK_DEFAULT_QUEUE
    (_broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "processed").mkdir(parents=True, exist_ok=True)
    (_broker_dir / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        "control_folder": str(_broker_dir / "control"),
        # How long a worker with nothing to fetch waits before it looks again: the delay of a
        # message sent to an idle worker (a webhook confirmation's is its latency budget).
        # Looking costs one listing of the queue folder per queue: 0.17% of a core at 0.1 s.
        "polling_interval": 0.1,
    }
    CELERY_WORKER_ENABLE_REMOTE_CONTROL = False  # the file broker has no broadcast channel
    CELERY_BROKER_TRANSPORT = "teckochecker.broker:Transport"  # atomic writes (see broker.py)
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A task whose worker died is redelivered after this many seconds (acks late).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 900, minimum=60)
    }
else:
    raise ConfigError("CELERY_BROKER_URL must be filesystem:// or a redis:// URL.")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_PREFETCH", 4, minimum=1)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Without it, Celery's Django fixup closes the thread's database connections before and after
# every task, so each task opened a new one (on PostgreSQL a new server process, per task).
# With it, the fixup closes them only every 1,000 tasks, and teckochecker/celery.py closes
# the ones too old (DB_CONN_MAX_AGE) or broken around each task, as Django does around a request.
CELERY_DB_REUSE_MAX = 1000
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "polling.scheduler:SingleBeatScheduler"
CELERY_BEAT_SCHEDULE = {
    "teckochecker-heartbeat": {"task": "polling.tasks.worker_heartbeat", "schedule": 30.0},
    "teckochecker-prune-logs": {"task": "polling.tasks.prune_logs", "schedule": 3600.0},
    "teckochecker-follow-keboola": {"task": "polling.tasks.follow_keboola_jobs", "schedule": 15.0},
}

# --- Polling --------------------------------------------------------------------------------
MIN_POLL_INTERVAL = env_int("MIN_POLL_INTERVAL", 30, minimum=1)
MAX_POLL_INTERVAL = env_int("MAX_POLL_INTERVAL", 3600, minimum=1)
DEFAULT_POLL_INTERVAL = env_int("DEFAULT_POLL_INTERVAL", 120, minimum=1)
if not MIN_POLL_INTERVAL <= DEFAULT_POLL_INTERVAL <= MAX_POLL_INTERVAL:
    raise ConfigError(
        "Poll intervals must satisfy MIN_POLL_INTERVAL <= DEFAULT_POLL_INTERVAL <= MAX_POLL_INTERVAL "
        f"(got {MIN_POLL_INTERVAL}, {DEFAULT_POLL_INTERVAL}, {MAX_POLL_INTERVAL})."
    )
# Where the OpenAI SDK sends requests; empty means OpenAI itself. Demos point it at the fake.
OPENAI_BASE_URL = env_str("OPENAI_BASE_URL") or None
OPENAI_TIMEOUT_SECONDS = env_float("OPENAI_TIMEOUT_SECONDS", 20.0, minimum=0.1)
# OpenAI reads in flight at once per worker process (one shared pool; see integrations/openai.py).
OPENAI_MAX_CONCURRENCY = env_int("OPENAI_MAX_CONCURRENCY", 32, minimum=1, maximum=256)
# Read batch states by listing a key's batches, 100 a page (GET /v1/batches), when that takes
# fewer requests than one GET per batch; false: always one GET per batch (the old way).
OPENAI_SWEEP = env_bool("OPENAI_SWEEP", True)
# The dispatcher hands a key's jobs due within this many seconds to the workers together, so
# that one sweep serves them all; they are checked up to this much early (the cadence stays).
OPENAI_SWEEP_AHEAD_SECONDS = env_int("OPENAI_SWEEP_AHEAD_SECONDS", 5, minimum=0, maximum=60)
# Most list pages one sweep reads; the batches it did not reach are read one by one.
OPENAI_SWEEP_MAX_PAGES = env_int("OPENAI_SWEEP_MAX_PAGES", 200, minimum=1)
KEBOOLA_TIMEOUT_SECONDS = env_float("KEBOOLA_TIMEOUT_SECONDS", 30.0, minimum=0.1)
# How long an outgoing webhook (the webhook action, notifications) may take to answer.
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 30.0, minimum=0.1)
# Stack URLs on http://127.0.0.1 or localhost (the fake Keboola) are refused unless allowed.
ALLOW_LOCAL_URLS = env_bool("ALLOW_LOCAL_URLS", DEBUG)
# Consecutive "bad key" / "unknown batch" answers before a job fails.
POLL_FAILURE_LIMIT = env_int("POLL_FAILURE_LIMIT", 3, minimum=1)
# Longest wait between checks while backing off from 429/5xx/timeouts.
POLL_MAX_BACKOFF_SECONDS = env_int("POLL_MAX_BACKOFF_SECONDS", 1800, minimum=1)
# Attempts to create the Keboola job before the polling job fails.
TRIGGER_MAX_ATTEMPTS = env_int("TRIGGER_MAX_ATTEMPTS", 6, minimum=1)
# A worker holds a job for at most this long; a crashed worker's claim expires after it.
POLL_LEASE_SECONDS = env_int("POLL_LEASE_SECONDS", 300, minimum=5)
# How long a job handed to the workers stays reserved: long enough for a message to wait in a
# busy queue, short enough that a lost message (broker or database restart) costs little.
DISPATCH_LEASE_SECONDS = env_int("DISPATCH_LEASE_SECONDS", 60, minimum=5)
# Celery workers lower their CPU priority by this much (0-19; 0 = unchanged): on a shared
# machine the web server answers first and the checks take the CPU that is left.
WORKER_NICE = env_int("WORKER_NICE", 10, minimum=0, maximum=19)
# At most this many dispatched jobs wait for a worker at once. When the workers fall behind, due
# jobs wait in the database (oldest first) instead of piling up in the broker, where their
# dispatch lease would expire and they would be sent again.
DISPATCH_MAX_QUEUED = env_int("DISPATCH_MAX_QUEUED", 1000, minimum=10)
# Confirmations of OpenAI webhooks (one batch read, maybe the trigger) go to their own queue,
# which the polling worker consumes on a channel of its own (teckochecker/celery.py FastLaneConsumer).
WEBHOOK_QUEUE = env_str("WEBHOOK_QUEUE", f"{CELERY_TASK_DEFAULT_QUEUE}-webhooks")
# A confirmation waits this long before it starts, so that more events of its job join it (one
# task, one lease for all). 0: it is sent at once, and events that arrive while it waits in the
# queue still join it; measured, a delay of 0.1 s cost 0.7 s at the median on the file broker.
WEBHOOK_COALESCE_SECONDS = env_float("WEBHOOK_COALESCE_SECONDS", 0.0, minimum=0)
# --- Scripts --------------------------------------------------------------------------------
# Users' scripts: each has a folder under SCRIPTS_DIR with its environment and run directories.
SCRIPTS_DIR = Path(env_str("SCRIPTS_DIR", str(DATA_DIR / "scripts"))).resolve()
# Script runs have their own queue and worker, so a slow script never delays polling.
SCRIPTS_QUEUE = env_str("SCRIPTS_QUEUE", f"{CELERY_TASK_DEFAULT_QUEUE}-scripts")
SCRIPTS_CONCURRENCY = env_int("SCRIPTS_CONCURRENCY", 2, minimum=1, maximum=64)
# Runs go through bubblewrap. Off is only for a trusted single-user machine (README, Scripts).
SCRIPTS_SANDBOX = env_bool("SCRIPTS_SANDBOX", True)
# Defaults of a new script's limits.
SCRIPTS_DEFAULT_TIMEOUT_SECONDS = env_int("SCRIPTS_DEFAULT_TIMEOUT_SECONDS", 300, minimum=1, maximum=86400)
SCRIPTS_DEFAULT_MEMORY_MB = env_int("SCRIPTS_DEFAULT_MEMORY_MB", 512, minimum=32, maximum=65536)
SCRIPTS_DEFAULT_CPU_SECONDS = env_int("SCRIPTS_DEFAULT_CPU_SECONDS", 300, minimum=1, maximum=86400)
# Output kept per run (stdout and stderr together); the rest is cut with a mark.
SCRIPTS_OUTPUT_MAX_BYTES = env_int("SCRIPTS_OUTPUT_MAX_BYTES", 1024 * 1024, minimum=1024)
# Run history kept per script: runs older than the days, and beyond the count, are deleted.
SCRIPTS_HISTORY_DAYS = env_int("SCRIPTS_HISTORY_DAYS", 30, minimum=1)
SCRIPTS_HISTORY_MAX_RUNS = env_int("SCRIPTS_HISTORY_MAX_RUNS", 200, minimum=1)
# Versions of code and requirements kept per script (the newest N; the current one always stays).
SCRIPTS_VERSIONS_KEEP = env_int("SCRIPTS_VERSIONS_KEEP", 50, minimum=1)
# A worker renews its run's lease twice a second; a run whose lease lapsed lost its worker and is
# ended as failed by the reaper, which runs every half lease (at most every 30 s).
SCRIPTS_RUN_LEASE_SECONDS = env_int("SCRIPTS_RUN_LEASE_SECONDS", 60, minimum=2, maximum=3600)
# A URL trigger's JSON parameters reach the script as one variable (TECKOCHECKER_PARAMS) of at
# most this many bytes; Linux refuses a single variable over 128 KiB.
SCRIPTS_TRIGGER_PARAMS_MAX_BYTES = env_int(
    "SCRIPTS_TRIGGER_PARAMS_MAX_BYTES", 64 * 1024, minimum=2, maximum=120_000
)
# How long a URL trigger's Idempotency-Key is remembered (a retry within it gets the same run).
SCRIPTS_TRIGGER_IDEMPOTENCY_HOURS = env_int(
    "SCRIPTS_TRIGGER_IDEMPOTENCY_HOURS", 24, minimum=1, maximum=24 * 30
)
# Script runs whose worker died are ended; runs past the history limits are deleted.
CELERY_BEAT_SCHEDULE["teckochecker-reap-script-runs"] = {
    "task": "scripts.tasks.reap_runs",
    "schedule": min(30.0, SCRIPTS_RUN_LEASE_SECONDS / 2),
}
CELERY_BEAT_SCHEDULE["teckochecker-prune-script-runs"] = {
    "task": "scripts.tasks.prune_runs",
    "schedule": 3600.0,
}

# --- Live updates (server-sent events) -----------------------------------------------------
# Open streams per web server process; one more gets 503 with Retry-After. Each open stream
# holds a web server thread, so gunicorn runs LIVE_MAX_STREAMS + WEB_THREADS threads and the
# rest of the API always has WEB_THREADS of its own (README, "Live updates").
LIVE_MAX_STREAMS = env_int("LIVE_MAX_STREAMS", 64, minimum=0, maximum=1000)
WEB_THREADS = env_int("WEB_THREADS", 8, minimum=1, maximum=256)
# A stream ends after this long (the browser reconnects and resumes), so threads recycle.
LIVE_STREAM_MAX_SECONDS = env_int("LIVE_STREAM_MAX_SECONDS", 300, minimum=5)
# A comment line this often keeps proxies from closing a quiet stream and finds gone clients.
LIVE_HEARTBEAT_SECONDS = env_float("LIVE_HEARTBEAT_SECONDS", 15.0, minimum=0.1)
# How often each web process reads the change feed without a wake-up. With Redis every commit
# rings at once and this is only the safety net.
LIVE_POLL_SECONDS = env_float(
    "LIVE_POLL_SECONDS",
    2.0 if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else 0.25,
    minimum=0.05,
)
# Changes are kept this long for clients resuming with Last-Event-ID (older: a `reset` event).
LIVE_HISTORY_HOURS = env_int("LIVE_HISTORY_HOURS", 24, minimum=1)
CELERY_BEAT_SCHEDULE["teckochecker-prune-changes"] = {"task": "live.tasks.prune_changes", "schedule": 3600.0}

# Margin added to twice the Keboola timeout before an unconfirmed trigger is looked up.
TRIGGER_RECONCILE_MARGIN_SECONDS = env_int("TRIGGER_RECONCILE_MARGIN_SECONDS", 30, minimum=0)
LOG_RETENTION_DAYS = env_int("LOG_RETENTION_DAYS", 30, minimum=1)
HEARTBEAT_STALE_SECONDS = env_int("HEARTBEAT_STALE_SECONDS", 120, minimum=5)

# --- Notifications --------------------------------------------------------------------------
# Defaults for jobs that set no recipients of their own.
NOTIFY_EMAILS = env_list("NOTIFY_EMAILS")
NOTIFY_WEBHOOK_URL = env_str("NOTIFY_WEBHOOK_URL")
NOTIFY_WEBHOOK_SECRET = env_str("NOTIFY_WEBHOOK_SECRET")  # HMAC-SHA256 key for the signature header
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 20, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "teckochecker@localhost")

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
LOG_FILE = env_str("LOG_FILE")
_handlers = {
    "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]},
}
if LOG_FILE:
    _handlers["file"] = {
        "class": "logging.handlers.WatchedFileHandler",
        "filename": LOG_FILE,
        "formatter": "plain",
        "filters": ["redact"],
    }
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "teckochecker.logfilters.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": _handlers,
    "root": {"handlers": list(_handlers), "level": LOG_LEVEL},
    # One line per HTTP request or per task is noise at thousands of jobs; our own job log
    # records what changed.
    "loggers": {
        name: {"level": env_choice("LIBRARY_LOG_LEVEL", "WARNING", {"DEBUG", "INFO", "WARNING", "ERROR"})}
        for name in (
            "httpx",
            "httpx2",
            "httpcore",
            "openai",
            "urllib3",
            "celery.app.trace",  # "Task ... succeeded"
            "celery.worker.strategy",  # "Task ... received"
            "celery.beat",  # "Sending due task ..." every few seconds
        )
    },
}
