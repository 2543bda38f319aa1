"""`manage.py doctor`: check configuration, database, broker, keys, schedules, processes and OpenAI."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from polling.models import JobStatus, PollingJob
from polling.services import health
from polling.services.schedules import schedules_overdue
from secrets_vault import selectors as secret_selectors
from teckochecker.cli import TeckoCommand, fmt_time
from teckochecker.envconfig import looks_like_placeholder

DEFAULT_OPENAI_URL = "https://api.openai.com/v1"
CONNECT_TIMEOUT = 3.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    warning: bool = False  # shown with ⚠, does not fail the run

    @property
    def mark(self) -> str:
        return "⚠" if self.warning else "✓" if self.ok else "✗"


class Command(TeckoCommand):
    help = (
        "Check the configuration, database and migrations, broker, FERNET_KEYS, periodic tasks, "
        "worker and scheduler heartbeats and the OpenAI endpoint. Exit code 1 if any check fails."
    )

    def handle(self, *args, **options) -> None:
        checks = self.run_checks()
        for check in checks:
            line = f"{check.mark} {check.name}: {check.detail}"
            self.stdout.write(self.style.SUCCESS(line) if check.ok and not check.warning else line)
        failed = [c for c in checks if not c.ok]
        if failed:
            raise CommandError(
                f"{len(failed)} of {len(checks)} checks failed: {', '.join(c.name for c in failed)}"
            )
        self.stdout.write("All checks passed.")

    def run_checks(self) -> list[Check]:
        checks = self.check_configuration()
        db = self.check_database()
        checks.append(db)
        if db.ok:
            checks += [
                self.check_migrations(),
                self.check_keys(),
                self.check_schedules(),
                *self.check_processes(),
            ]
        checks += [self.check_broker(), self.check_openai()]
        return checks

    # Each check is a method so a test can call it on its own.

    def check_configuration(self) -> list[Check]:
        checks = []
        if settings.DEBUG:
            checks.append(
                Check("Configuration", True, "DEBUG is on (development mode); never expose it.", warning=True)
            )
        else:
            bad = [
                name
                for name, values in (
                    ("SECRET_KEY", [settings.SECRET_KEY]),
                    ("FERNET_KEYS", settings.FERNET_KEYS),
                )
                if not values
                or any(
                    looks_like_placeholder(v) or v.startswith("insecure-development-only-") for v in values
                )
            ]
            if bad:
                checks.append(
                    Check("Configuration", False, f"production mode without real {' and '.join(bad)}.")
                )
            else:
                checks.append(
                    Check("Configuration", True, "production mode, SECRET_KEY and FERNET_KEYS set.")
                )
        if not settings.DEBUG and not settings.HTTPS_ONLY:
            checks.append(
                Check(
                    "HTTPS",
                    True,
                    "HTTPS_ONLY is off in production mode: fine on 127.0.0.1, not behind a public address.",
                    warning=True,
                )
            )
        elif settings.HTTPS_ONLY:
            checks.append(Check("HTTPS", True, "HTTPS_ONLY is on (secure cookies, HSTS, redirect)."))
        return checks

    def check_database(self) -> Check:
        if health.database_ok():
            return Check("Database", True, f"{connection.vendor} reachable.")
        return Check("Database", False, f"{connection.vendor} not reachable (check DATABASE_URL).")

    def check_migrations(self) -> Check:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if plan:
            return Check("Migrations", False, f"{len(plan)} unapplied; run `manage.py migrate`.")
        return Check("Migrations", True, "all applied.")

    def check_keys(self) -> Check:
        unreadable = secret_selectors.unreadable_secret_ids()
        if not unreadable:
            return Check("FERNET_KEYS", True, "every stored secret decrypts.")
        names = sorted(s.name for s in secret_selectors.secret_list() if s.pk in unreadable)
        return Check(
            "FERNET_KEYS",
            False,
            f"{len(names)} secret(s) no configured key decrypts: {', '.join(names)}. "
            "Put the old key back in FERNET_KEYS (after the new one).",
        )

    def check_schedules(self) -> Check:
        jobs = PollingJob.objects.count()
        undated = PollingJob.objects.filter(status=JobStatus.ACTIVE, next_check_at__isnull=True).count()
        overdue = schedules_overdue()
        if undated:
            return Check(
                "Schedules",
                False,
                f"{undated} active job(s) without a due time; run `manage.py sync_schedules`.",
            )
        if overdue:
            return Check(
                "Schedules", False, f"{overdue} active job(s) overdue by over a minute; is beat running?"
            )
        return Check("Schedules", True, f"in step with {jobs} job(s).")

    def check_processes(self) -> list[Check]:
        live = health.liveness()
        checks = []
        for name, part in (("Worker", live["worker"]), ("Scheduler", live["scheduler"])):
            seen = fmt_time(part["last_seen"], "never")
            if part["alive"]:
                checks.append(Check(name, True, f"alive (last seen {seen})."))
            else:
                checks.append(
                    Check(name, False, f"no fresh heartbeat (last seen {seen}); run `manage.py start`.")
                )
        return checks

    def check_broker(self) -> Check:
        url = settings.CELERY_BROKER_URL.split("://", 1)[0]
        if health.broker_ok():
            return Check("Broker", True, f"{url} reachable.")
        return Check("Broker", False, f"{url} not reachable (check CELERY_BROKER_URL).")

    def check_openai(self) -> Check:
        url = settings.OPENAI_BASE_URL or DEFAULT_OPENAI_URL
        try:
            parts = urlsplit(url)
            host = parts.hostname
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            host = None
        if not host:
            return Check("OpenAI", False, f"OPENAI_BASE_URL '{url}' is not a valid URL.")
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT):
                pass
        except OSError as exc:
            return Check("OpenAI", False, f"{host}:{port} not reachable ({exc.strerror or exc}).")
        return Check("OpenAI", True, f"{host}:{port} reachable.")
