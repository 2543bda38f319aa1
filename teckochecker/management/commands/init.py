"""`manage.py init`: write `.env` with fresh keys, migrate, and create the admin user."""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.management.utils import get_random_secret_key
from dotenv import dotenv_values

from teckochecker.cli import TeckoCommand

# manage.py sets this when it had to start `init` with development keys (see there).
INIT_BOOTSTRAP_VAR = "TECKOCHECKER_INIT_BOOTSTRAP"
_CONTINUED = "done"


def env_file_path() -> Path | None:
    """Where settings read `.env` from, or None when TECKOCHECKER_ENV_FILE=none."""
    raw = os.environ.get("TECKOCHECKER_ENV_FILE", str(settings.BASE_DIR / ".env"))
    return None if raw.lower() == "none" else Path(raw)


def render_env_file() -> str:
    """A laptop `.env` with freshly generated keys. Values are single-quoted so that `$` and
    `#` in the Django key stay literal for python-dotenv, docker compose and shells alike."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            f"# Written by `python manage.py init` on {stamp}. Keep it private: it holds the keys.",
            "# Every variable is described in .env.example.",
            "",
            "# Production mode with plain http on this machine. A server behind HTTPS sets",
            "# HTTPS_ONLY=true and its own host name in ALLOWED_HOSTS.",
            "DEBUG=false",
            "HTTPS_ONLY=false",
            "ALLOWED_HOSTS=127.0.0.1,localhost",
            "",
            "# Losing FERNET_KEYS makes every stored secret unreadable: back this file up.",
            f"SECRET_KEY='{get_random_secret_key()}'",
            f"FERNET_KEYS='{Fernet.generate_key().decode()}'",
            "",
            "# Used only by docker-compose.yml for its PostgreSQL container.",
            f"POSTGRES_PASSWORD='{secrets.token_urlsafe(24)}'",
            "",
        ]
    )


_PROVE_SETTINGS = """
import sys
try:
    import django
    django.setup()
except Exception as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
"""


def prove_env_file_loads(path: Path) -> None:
    """Load the settings from `path` in a fresh interpreter, as `start` will, with none of the
    file's variables taken from this environment. Raises CommandError with the settings' own
    message when they do not load, so init never reports success for a file that fails later."""
    defined = set(dotenv_values(path))
    env = {k: v for k, v in os.environ.items() if k not in defined and k != INIT_BOOTSTRAP_VAR}
    env.update(TECKOCHECKER_ENV_FILE=str(path), DJANGO_SETTINGS_MODULE="teckochecker.settings")
    result = subprocess.run(
        [sys.executable, "-c", _PROVE_SETTINGS],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode:
        reason = (
            result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "it exited with an error"
        )
        raise CommandError(f"The generated settings do not load, so nothing was written: {reason}")


def write_private_file(path: Path, text: str, *, prove: Callable[[Path], None] | None = None) -> None:
    """Replace `path` atomically with `text`, readable by its owner only (mode 0600). `prove`
    checks the new file under its temporary name first; if it raises, `path` is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".env-", suffix=".tmp")  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        if prove is not None:
            prove(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Command(TeckoCommand):
    help = (
        "Set up this checkout: write .env with fresh SECRET_KEY and FERNET_KEYS (never overwriting "
        "one without --force), apply migrations and create the admin user."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--force", action="store_true", help="Replace an existing .env (new keys!).")
        parser.add_argument(
            "--no-input",
            "--noinput",
            action="store_false",
            dest="interactive",
            help="Ask nothing: generate the admin password and print it once.",
        )
        parser.add_argument("--admin-username", default="admin", help="Default: admin.")
        parser.add_argument("--admin-email", default="", help="Optional e-mail for the admin user.")
        # Internal: the continuation run after the keys were written.
        parser.add_argument("--env-ready", action="store_true", help=argparse.SUPPRESS)

    def handle(self, *args, interactive: bool, force: bool, env_ready: bool, **options) -> None:
        bootstrapping = os.environ.get(INIT_BOOTSTRAP_VAR, _CONTINUED) != _CONTINUED
        if not env_ready:
            wrote = self.write_env(force=force)
            if wrote or bootstrapping:
                # This process loaded its settings before the keys existed: finish in a fresh one.
                self.continue_in_fresh_process(interactive=interactive, **options)
                return
        self.stdout.write("Applying database migrations…")
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write(self.style.SUCCESS("✓ Database is up to date"))
        self.ensure_admin(
            username=options["admin_username"], email=options["admin_email"], interactive=interactive
        )
        self.stdout.write(
            "Next: `python manage.py start` (or `make run`), then open http://127.0.0.1:8000/web"
        )

    def write_env(self, *, force: bool) -> bool:
        """Write `.env` unless one exists (or --force). Returns whether a file was written."""
        path = env_file_path()
        if path is None:
            self.stdout.write(
                "TECKOCHECKER_ENV_FILE is 'none': no .env written; keys come from the environment."
            )
            return False
        if path.exists() and not force:
            self.stdout.write(f"{path} already exists: kept it unchanged (use --force to replace its keys).")
            return False
        if path.exists():
            self.stderr.write(
                self.style.WARNING(
                    f"Replacing {path}: secrets stored with the old FERNET_KEYS can no longer be read."
                )
            )
        write_private_file(path, render_env_file(), prove=prove_env_file_loads)
        self.stdout.write(self.style.SUCCESS(f"✓ Wrote {path} with fresh keys (mode 0600)"))
        return True

    def continue_in_fresh_process(self, *, interactive: bool, **options) -> None:
        env = os.environ.copy()
        original_debug = env.pop(INIT_BOOTSTRAP_VAR, _CONTINUED)
        if original_debug != _CONTINUED:
            env.pop("DEBUG", None)
            if original_debug.startswith("set:"):
                env["DEBUG"] = original_debug.removeprefix("set:")
        env[INIT_BOOTSTRAP_VAR] = _CONTINUED
        argv = [sys.executable, str(settings.BASE_DIR / "manage.py"), "init", "--env-ready"]
        argv += ["--admin-username", options["admin_username"], "--admin-email", options["admin_email"]]
        if not interactive:
            argv.append("--no-input")
        self.stdout.flush()
        code = subprocess.run(argv, env=env, check=False).returncode
        if code:
            raise SystemExit(code)

    def ensure_admin(self, *, username: str, email: str, interactive: bool) -> None:
        user_model = get_user_model()
        if user_model.objects.filter(username=username).exists():
            self.stdout.write(f"Admin user '{username}' already exists: password unchanged.")
            return
        candidate = user_model(username=username, email=email)
        if interactive and sys.stdin.isatty():
            password = self.ask_password(candidate)
            user_model.objects.create_superuser(username=username, email=email, password=password)
            self.stdout.write(self.style.SUCCESS(f"✓ Created admin user '{username}'"))
            return
        password = secrets.token_urlsafe(18)
        user_model.objects.create_superuser(username=username, email=email, password=password)
        # Shown once and stored only as a hash: there is no way to print it again.
        self.stdout.write(self.style.SUCCESS(f"✓ Created admin user '{username}' with password: {password}"))
        self.stdout.write("  Note it now: it is not stored anywhere and will not be shown again.")

    def ask_password(self, candidate) -> str:
        for _ in range(3):
            password = getpass.getpass(f"Password for admin user '{candidate.username}': ")
            if password != getpass.getpass("Password (again): "):
                self.stderr.write("The two passwords differ; try again.")
                continue
            try:
                validate_password(password, user=candidate)
            except ValidationError as exc:
                self.stderr.write(" ".join(exc.messages))
                continue
            return password
        raise CommandError("No acceptable password after three attempts; nothing was created.")
