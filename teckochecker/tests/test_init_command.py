"""`manage.py init` on a machine that has nothing yet: no .env, no database, DEBUG off.

It runs in a subprocess, as a user runs it: settings are loaded before the command starts,
which is exactly what makes the first run interesting.
"""

from __future__ import annotations

import io
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.management import CommandError, call_command
from dotenv import dotenv_values
from rest_framework.authtoken.models import Token

from teckochecker.envconfig import looks_like_placeholder
from teckochecker.tests.test_settings_env import clean_env

BASE_DIR = Path(settings.BASE_DIR)


class Site:
    def __init__(self, root: Path):
        self.root = root
        self.env_file = root / "conf" / ".env"
        self.db = root / "db.sqlite3"
        # No DEBUG and no keys: production mode, as on a fresh clone.
        self.env = clean_env(
            root, TECKOCHECKER_ENV_FILE=str(self.env_file), DATABASE_URL=f"sqlite:///{self.db}"
        )

    def manage(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env={**self.env, **extra_env},
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    def users(self) -> list[tuple[str, bool, bool, str]]:
        with sqlite3.connect(self.db) as db:
            return db.execute("SELECT username, is_superuser, is_staff, password FROM auth_user").fetchall()


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    site = Site(tmp_path_factory.mktemp("init"))
    result = site.manage("init", "--no-input")
    return site, result


@pytest.mark.embedded_defaults
def test_init_on_an_empty_directory_succeeds_with_debug_off(first_run):
    site, result = first_run
    assert result.returncode == 0, result.stderr
    assert "Configuration error" not in result.stderr


@pytest.mark.embedded_defaults
def test_init_writes_a_private_env_file_with_real_keys(first_run):
    site, _ = first_run
    assert stat.S_IMODE(site.env_file.stat().st_mode) == 0o600
    values = dotenv_values(site.env_file)
    assert values["DEBUG"] == "false"
    assert values["HTTPS_ONLY"] == "false"
    assert values["ALLOWED_HOSTS"] == "127.0.0.1,localhost"
    assert len(values["SECRET_KEY"]) >= 50 and not looks_like_placeholder(values["SECRET_KEY"])
    [key] = values["FERNET_KEYS"].split(",")
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"x")) == b"x"


@pytest.mark.embedded_defaults
def test_init_creates_the_admin_and_prints_its_password_once(first_run):
    site, result = first_run
    [(username, is_superuser, is_staff, encoded)] = site.users()
    assert (username, is_superuser, is_staff) == ("admin", 1, 1)
    line = next(ln for ln in result.stdout.splitlines() if "with password:" in ln)
    password = line.rsplit(": ", 1)[1].strip()
    assert len(password) >= 20
    assert PBKDF2PasswordHasher().verify(password, encoded)  # the suite itself uses MD5
    assert result.stdout.count(password) == 1
    assert password not in site.env_file.read_text()
    assert not any(password in p.read_text(errors="ignore") for p in site.root.rglob("*") if p.is_file())


@pytest.mark.embedded_defaults
def test_the_written_keys_make_manage_py_work_in_production_mode(first_run):
    site, _ = first_run
    result = site.manage("check")
    assert result.returncode == 0, result.stderr


@pytest.mark.embedded_defaults
def test_init_keeps_an_existing_env_file_without_force(first_run):
    site, _ = first_run
    before = site.env_file.read_text()
    result = site.manage("init", "--no-input")
    assert result.returncode == 0, result.stderr
    assert "already exists" in result.stdout and "--force" in result.stdout
    assert site.env_file.read_text() == before
    assert "already exists: password unchanged" in result.stdout
    assert "with password:" not in result.stdout
    assert len(site.users()) == 1


@pytest.mark.embedded_defaults
def test_init_force_replaces_the_keys_and_keeps_the_admin(first_run):
    site, _ = first_run
    before = dotenv_values(site.env_file)
    result = site.manage("init", "--no-input", "--force")
    assert result.returncode == 0, result.stderr
    after = dotenv_values(site.env_file)
    assert after["SECRET_KEY"] != before["SECRET_KEY"]
    assert after["FERNET_KEYS"] != before["FERNET_KEYS"]
    assert stat.S_IMODE(site.env_file.stat().st_mode) == 0o600
    assert len(site.users()) == 1


@pytest.mark.embedded_defaults
def test_init_with_debug_exported_false_still_bootstraps(tmp_path):
    site = Site(tmp_path)
    result = site.manage("init", "--no-input", "--admin-username", "boss", DEBUG="false")
    assert result.returncode == 0, result.stderr
    assert [u[0] for u in site.users()] == ["boss"]


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user(username="admin", password="x", is_staff=True)


def apitoken(*args: str) -> str:
    out = io.StringIO()
    call_command("apitoken", *args, stdout=out)
    return out.getvalue().strip()


@pytest.mark.django_db
def test_apitoken_create_prints_the_key_of_a_staff_user(staff):
    key = apitoken("create", "--user", "admin")
    assert key == Token.objects.get(user=staff).key
    assert apitoken("create", "--user", "admin") == key  # stable until revoked or reset
    assert apitoken("create", "--user", "admin", "--reset") != key


@pytest.mark.django_db
def test_apitoken_revoke_deletes_the_key(staff):
    apitoken("create", "--user", "admin")
    assert "Revoked" in apitoken("revoke", "--user", "admin")
    assert not Token.objects.filter(user=staff).exists()
    assert "nothing to revoke" in apitoken("revoke", "--user", "admin")


@pytest.mark.django_db
def test_apitoken_refuses_unknown_and_non_staff_users(django_user_model):
    django_user_model.objects.create_user(username="viewer", password="x")
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        apitoken("create", "--user", "nobody")
    with pytest.raises(CommandError, match="not an active staff user"):
        apitoken("create", "--user", "viewer")
    assert not Token.objects.exists()


@pytest.mark.embedded_defaults
def test_apitoken_for_an_unknown_user_exits_1(first_run):
    site, _ = first_run
    result = site.manage("apitoken", "create", "--user", "nobody")
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: No user named 'nobody'."
    assert result.stdout == ""


def test_init_writes_nothing_when_the_new_file_would_not_load(monkeypatch, tmp_path):
    from teckochecker.management.commands import init

    target = tmp_path / "conf" / ".env"
    broken = init.render_env_file().replace("FERNET_KEYS='", "FERNET_KEYS='not-a-key,", 1)
    monkeypatch.setattr(init, "env_file_path", lambda: target)
    monkeypatch.setattr(init, "render_env_file", lambda: broken)
    command = init.Command(stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="FERNET_KEYS entry 1 is not a valid Fernet key") as raised:
        command.write_env(force=False)
    assert "nothing was written" in str(raised.value)
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary file left behind
    assert "✓" not in command.stdout.getvalue()
