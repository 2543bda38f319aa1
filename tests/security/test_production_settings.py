"""Production mode (DEBUG off, HTTPS_ONLY on): secure cookies, HSTS, HTTPS redirect, and
`manage.py check --deploy` without a single warning. Real processes with a clean environment."""

import json
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

pytestmark = [pytest.mark.slow, pytest.mark.embedded_defaults]


@pytest.fixture(scope="module")
def production_env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prod")
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "HTTPS_ONLY", "BEHIND_PROXY")}
    env.update(
        DJANGO_SETTINGS_MODULE="teckochecker.settings",
        TECKOCHECKER_ENV_FILE="none",
        DEBUG="false",
        HTTPS_ONLY="true",
        SECRET_KEY=Fernet.generate_key().decode() + Fernet.generate_key().decode(),
        FERNET_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="teckochecker.example.com",
        DATABASE_URL=f"sqlite:///{folder / 'prod.sqlite3'}",
        DATA_DIR=str(folder / "data"),
        CELERY_BROKER_URL="filesystem://",
    )
    return env


def _run(env, *args):
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_is_clean_in_production_mode(production_env):
    done = _run(production_env, "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_cookies_hsts_and_redirect_are_on_in_production_mode(production_env):
    names = [
        "DEBUG",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SESSION_COOKIE_HTTPONLY",
        "X_FRAME_OPTIONS",
    ]
    script = f"from django.conf import settings; import json; print(json.dumps({{n: getattr(settings, n) for n in {names!r}}}))"
    done = _run(production_env, "shell", "-c", script)
    assert done.returncode == 0, done.stderr
    values = json.loads(done.stdout.strip().splitlines()[-1])
    assert values["DEBUG"] is False
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"] and values["SECURE_SSL_REDIRECT"]
    assert values["SECURE_HSTS_SECONDS"] >= 31536000 and values["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert values["SESSION_COOKIE_HTTPONLY"] and values["X_FRAME_OPTIONS"] == "DENY"


def test_production_mode_refuses_to_start_without_keys(production_env):
    env = {**production_env, "SECRET_KEY": "", "FERNET_KEYS": ""}
    done = _run(env, "check")
    assert done.returncode != 0
    assert "SECRET_KEY" in done.stderr and "Traceback" not in done.stderr or "SECRET_KEY" in done.stderr
