"""A bad environment stops start-up with one clear line that names the variable.

The manage.py cases run in a subprocess (that is what a user sees); the many value checks run
the settings module in-process with a patched environment, which is much faster.
"""

from __future__ import annotations

import base64
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(settings.BASE_DIR)
SETTINGS_FILE = BASE_DIR / "teckochecker" / "settings.py"
GOOD_KEYS = {
    "SECRET_KEY": "a-real-looking-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "FERNET_KEYS": "dGVzdC1mZXJuZXQta2V5LWZvci10aGUtc3VpdGUtMzI=",
}
# Everything settings.py reads; the test environment sets several of them.
SETTINGS_VARIABLES = sorted(
    set(re.findall(r'env_\w+\(\s*"([A-Z_]+)"', SETTINGS_FILE.read_text()))
    | {"TECKOCHECKER_ENV_FILE", "DJANGO_SETTINGS_MODULE"}
)


@pytest.fixture(autouse=True)
def restore_environ():
    """Loading settings may read a .env file into os.environ; undo all of it."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """The real environment minus every TeckoChecker variable, plus `values`."""
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    env.update(TECKOCHECKER_ENV_FILE="none", DATA_DIR=str(tmp_path / "data"))
    env.update(DJANGO_SETTINGS_MODULE="teckochecker.settings")
    env.update(values)
    return env


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def load_settings(monkeypatch, tmp_path: Path, **values: str) -> dict:
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in clean_env(tmp_path, **values).items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_FILE))


def test_manage_py_reports_a_bad_number_in_one_line(tmp_path):
    result = manage(clean_env(tmp_path, MIN_POLL_INTERVAL="abc", **GOOD_KEYS), "check")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Configuration error: MIN_POLL_INTERVAL must be a whole number (got 'abc')."
    ]
    assert "Traceback" not in result.stdout + result.stderr


def test_manage_py_without_fernet_keys_in_production_says_how_to_make_one(tmp_path):
    result = manage(clean_env(tmp_path, SECRET_KEY=GOOD_KEYS["SECRET_KEY"]), "check")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Configuration error: FERNET_KEYS is missing")
    assert "manage.py init" in line and "Fernet.generate_key()" in line


def test_manage_py_check_passes_with_real_keys(tmp_path):
    result = manage(clean_env(tmp_path, **GOOD_KEYS), "check")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MIN_POLL_INTERVAL", "abc"),
        ("MAX_POLL_INTERVAL", "0"),
        ("DEFAULT_POLL_INTERVAL", "1.5"),
        ("DEBUG", "maybe"),
        ("HTTPS_ONLY", "sometimes"),
        ("LOG_LEVEL", "loud"),
        ("DATABASE_URL", "mysql://db/x"),
        ("CELERY_BROKER_URL", "amqp://localhost"),
        ("OPENAI_TIMEOUT_SECONDS", "soon"),
        ("POLL_LEASE_SECONDS", "1"),
    ],
)
def test_a_bad_value_names_its_variable(monkeypatch, tmp_path, name, value):
    with pytest.raises(ImproperlyConfigured, match=name):
        load_settings(monkeypatch, tmp_path, **{**GOOD_KEYS, name: value})


def test_poll_interval_bounds_must_be_ordered(monkeypatch, tmp_path):
    with pytest.raises(ImproperlyConfigured, match="MIN_POLL_INTERVAL <= DEFAULT_POLL_INTERVAL"):
        load_settings(monkeypatch, tmp_path, MIN_POLL_INTERVAL="300", **GOOD_KEYS)


@pytest.mark.parametrize("name", ["SECRET_KEY", "FERNET_KEYS"])
@pytest.mark.parametrize("placeholder", ["change-me", "your-key-here", ""])
def test_production_rejects_a_placeholder_key(monkeypatch, tmp_path, name, placeholder):
    with pytest.raises(ImproperlyConfigured, match=f"{name} is missing or a placeholder"):
        load_settings(monkeypatch, tmp_path, **{**GOOD_KEYS, name: placeholder})


def test_debug_mode_runs_without_keys_but_warns(monkeypatch, tmp_path):
    with pytest.warns(UserWarning, match="insecure development key"):
        loaded = load_settings(monkeypatch, tmp_path, DEBUG="true")
    assert loaded["DEBUG"] is True


def test_laptop_defaults(monkeypatch, tmp_path):
    loaded = load_settings(monkeypatch, tmp_path, **GOOD_KEYS)
    assert loaded["MIN_POLL_INTERVAL"] == 30
    assert loaded["MAX_POLL_INTERVAL"] == 3600
    assert loaded["DEFAULT_POLL_INTERVAL"] == 120
    assert loaded["TIME_ZONE"] == "UTC"
    assert loaded["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert loaded["CELERY_BROKER_URL"] == "filesystem://localhost/"  # the embedded file broker
    assert loaded["HTTPS_ONLY"] is True  # production mode is secure unless .env says otherwise


POSTGRES_URL = "postgresql://teckochecker:pw@db.internal:5432/teckochecker"


def test_postgresql_connections_notice_a_cut_link_within_a_minute(monkeypatch, tmp_path):
    options = load_settings(monkeypatch, tmp_path, DATABASE_URL=POSTGRES_URL, **GOOD_KEYS)["DATABASES"][
        "default"
    ]["OPTIONS"]
    assert options == {
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": 60_000,  # milliseconds: idle + interval x count
    }


def test_keepalives_follow_the_environment_and_the_url_wins(monkeypatch, tmp_path):
    loaded = load_settings(
        monkeypatch,
        tmp_path,
        DATABASE_URL=f"{POSTGRES_URL}?keepalives_count=5&sslmode=require",
        DB_KEEPALIVES_IDLE="20",
        DB_KEEPALIVES_INTERVAL="5",
        DB_KEEPALIVES_COUNT="2",
        **GOOD_KEYS,
    )
    options = loaded["DATABASES"]["default"]["OPTIONS"]
    assert (options["keepalives_idle"], options["keepalives_interval"]) == (20, 5)
    assert (options["keepalives_count"], options["sslmode"]) == (5, "require")
    assert options["tcp_user_timeout"] == 30_000


@pytest.mark.parametrize("name", ["DB_KEEPALIVES_IDLE", "DB_KEEPALIVES_INTERVAL", "DB_KEEPALIVES_COUNT"])
def test_a_keepalive_setting_must_be_a_positive_number(monkeypatch, tmp_path, name):
    with pytest.raises(ImproperlyConfigured, match=f"{name} must be at least 1"):
        load_settings(monkeypatch, tmp_path, DATABASE_URL=POSTGRES_URL, **{**GOOD_KEYS, name: "0"})


def test_sqlite_has_no_tcp_options(monkeypatch, tmp_path):
    options = load_settings(monkeypatch, tmp_path, **GOOD_KEYS)["DATABASES"]["default"]["OPTIONS"]
    assert not any(key.startswith(("keepalives", "tcp_")) for key in options)


def test_env_example_documents_every_variable_settings_reads():
    example = (BASE_DIR / ".env.example").read_text()
    documented = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    missing = set(SETTINGS_VARIABLES) - documented - {"DJANGO_SETTINGS_MODULE"}
    assert not missing, f".env.example lacks {sorted(missing)}"
    lines = example.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^#? ?[A-Z][A-Z0-9_]+=", line):
            assert lines[i - 1].startswith("# ") or re.match(r"^#? ?[A-Z][A-Z0-9_]+=", lines[i - 1]), line


def test_env_example_keys_are_placeholders_production_refuses(monkeypatch, tmp_path):
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TECKOCHECKER_ENV_FILE", str(BASE_DIR / ".env.example"))
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is missing or a placeholder"):
        runpy.run_path(str(SETTINGS_FILE))


@pytest.mark.parametrize(
    ("keys", "position"),
    [
        ("not-a-key", 1),
        (f"{GOOD_KEYS['FERNET_KEYS']},not-a-key", 2),
        (GOOD_KEYS["FERNET_KEYS"][:-2] + "=", 1),  # one character short
        (base64.b64encode(b"\xfb" * 32).decode(), 1),  # standard base64 ('+', '/'), not URL-safe
        ("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB", 1),  # base64, but 30 bytes
    ],
)
@pytest.mark.parametrize("debug", ["false", "true"])
def test_each_fernet_key_must_be_a_fernet_key(monkeypatch, tmp_path, keys, position, debug):
    with pytest.raises(
        ImproperlyConfigured, match=f"^FERNET_KEYS entry {position} is not a valid Fernet key"
    ):
        load_settings(monkeypatch, tmp_path, DEBUG=debug, **{**GOOD_KEYS, "FERNET_KEYS": keys})


def test_every_key_init_can_generate_loads(monkeypatch, tmp_path):
    """Random keys contain any text: 'xXx' or 'your-' inside one once failed 1 install in 500."""
    from cryptography.fernet import Fernet
    from django.core.management.utils import get_random_secret_key

    from teckochecker.envconfig import fernet_keys_problem, looks_like_placeholder

    fernet_keys = [Fernet.generate_key().decode() for _ in range(20_000)]
    secret_keys = [get_random_secret_key() for _ in range(20_000)]
    assert fernet_keys_problem(fernet_keys) is None
    assert not [k for k in fernet_keys + secret_keys if looks_like_placeholder(k)]
    # The keys that used to fail, through the settings module itself.
    unlucky = [k for k in fernet_keys if any(m in k.lower() for m in ("xxx", "your-", "change"))]
    assert unlucky, "20,000 keys without one 'xxx' inside: the generator changed"
    for key in unlucky[:20]:
        loaded = load_settings(monkeypatch, tmp_path, SECRET_KEY=f"{secret_keys[0]}xXx", FERNET_KEYS=key)
        assert loaded["FERNET_KEYS"] == [key]


@pytest.mark.parametrize("value", ["Change-Me", " change-me ", "'your-secret-key'", "XXX", "placeholder"])
def test_known_placeholders_are_refused_whatever_their_case(monkeypatch, tmp_path, value):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is missing or a placeholder"):
        load_settings(monkeypatch, tmp_path, **{**GOOD_KEYS, "SECRET_KEY": value})
