"""`manage.py demo`: the whole product working end to end, with no real credentials.

It starts the fake OpenAI and Keboola servers, a throw-away database under DATA_DIR/demo and
the real service (web, worker, beat), creates two secrets and a job watching three batches
that finish within a minute, and narrates until Keboola has been triggered.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

from teckochecker.cli import TeckoCommand

DEMO_FLAG = "TECKOCHECKER_DEMO_CHILD"


class Command(TeckoCommand):
    help = "Run a self-contained demo against local fake OpenAI and Keboola servers."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=8000, help="Web server port (default 8000).")
        parser.add_argument("--fake-port", type=int, default=8001, help="Fake servers' port (default 8001).")
        parser.add_argument(
            "--finish-within", type=float, default=45.0, help="Seconds until the last demo batch finishes."
        )
        parser.add_argument(
            "--exit-when-done", action="store_true", help="Stop everything once Keboola has been triggered."
        )
        parser.add_argument("--timeout", type=float, default=300.0, help="Give up after this many seconds.")

    def handle(self, *args, **options) -> None:
        for name in ("port", "fake_port"):
            if not 1 <= options[name] <= 65535:
                raise CommandError(f"--{name.replace('_', '-')} must be a port number (1-65535).")
        if not 5 <= options["finish_within"] <= 3600:
            raise CommandError("--finish-within must be between 5 and 3600 seconds.")
        if os.environ.get(DEMO_FLAG) != "1":
            self._reexec_with_demo_settings(options)
        self._run(options)

    def _reexec_with_demo_settings(self, options) -> None:
        """Settings are read once per process, so the demo's own ones need a fresh process."""
        demo_dir = Path(settings.DATA_DIR) / "demo"
        shutil.rmtree(demo_dir, ignore_errors=True)
        demo_dir.mkdir(parents=True)
        from cryptography.fernet import Fernet

        env = {
            **os.environ,
            DEMO_FLAG: "1",
            "TECKOCHECKER_ENV_FILE": "none",
            "DATA_DIR": str(demo_dir),
            "DATABASE_URL": f"sqlite:///{demo_dir / 'demo.sqlite3'}",
            "CELERY_BROKER_URL": "filesystem://",
            "CELERY_QUEUE": "teckochecker-demo",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "FERNET_KEYS": Fernet.generate_key().decode(),
            "DEBUG": "false",
            "HTTPS_ONLY": "false",
            "ALLOW_LOCAL_URLS": "true",
            "MIN_POLL_INTERVAL": "5",
            "OPENAI_BASE_URL": f"http://127.0.0.1:{options['fake_port']}/v1",
            "PYTHONUNBUFFERED": "1",
        }
        argv = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "demo"]
        argv += ["--port", str(options["port"]), "--fake-port", str(options["fake_port"])]
        argv += ["--finish-within", str(options["finish_within"]), "--timeout", str(options["timeout"])]
        if options["exit_when_done"]:
            argv.append("--exit-when-done")
        sys.stdout.flush()
        os.execve(sys.executable, argv, env)  # noqa: S606 (our own interpreter and manage.py)

    def _run(self, options) -> None:
        from django.contrib.auth import get_user_model

        from polling.fakes.server import FakeServer
        from polling.models import JobStatus, PollingJob
        from polling.services import job_create
        from secrets_vault.services import secret_create

        out = self.stdout.write
        call_command("migrate", interactive=False, verbosity=0)
        password = secrets.token_urlsafe(12)
        get_user_model().objects.create_superuser("demo", "demo@example.invalid", password)

        try:
            fake = FakeServer(port=options["fake_port"]).start()
        except OSError as exc:
            raise CommandError(
                f"Cannot start the fake servers on port {options['fake_port']}: {exc}"
            ) from None
        span = options["finish_within"]
        fake.add_batch("batch_demo_alpha", finish_after=span * 0.45, outcome="completed", total=120)
        fake.add_batch("batch_demo_beta", finish_after=span * 0.75, outcome="completed", total=80)
        fake.add_batch("batch_demo_gamma", finish_after=span, outcome="failed", total=60)
        fake.configure_keboola(start_after=2, finish_after=6, outcome="success")

        openai_secret = secret_create(
            name="demo-openai", type="openai", value="sk-demo-" + secrets.token_hex(16)
        )
        keboola_secret = secret_create(
            name="demo-keboola", type="keboola", value="kbc-demo-" + secrets.token_hex(16)
        )
        job = job_create(
            name="Demo: three batches",
            batch_ids=["batch_demo_alpha", "batch_demo_beta", "batch_demo_gamma"],
            openai_secret_id=openai_secret.pk,
            keboola_secret_id=keboola_secret.pk,
            keboola_stack_url=fake.stack_url,
            keboola_component_id="kds-team.app-custom-python",
            keboola_configuration_id="demo-123",
            poll_interval_seconds=5,
        )

        out("TeckoChecker demo")
        out(f"  fake OpenAI + Keboola : {fake.url}")
        out(f"  web page              : http://127.0.0.1:{options['port']}/web   (user demo / {password})")
        out(f"  demo job              : #{job.pk} watching 3 batches, checked every 5 s")
        service = subprocess.Popen(
            [
                sys.executable,
                str(Path(settings.BASE_DIR) / "manage.py"),
                "start",
                "--port",
                str(options["port"]),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if options["exit_when_done"] else None,
            stderr=subprocess.STDOUT if options["exit_when_done"] else None,
        )
        stop = []
        signal.signal(signal.SIGINT, lambda *_: stop.append(1))
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        deadline = time.monotonic() + options["timeout"]
        last_line, code = "", 1
        try:
            while not stop and time.monotonic() < deadline and service.poll() is None:
                job = PollingJob.objects.prefetch_related("batches").get(pk=job.pk)
                line = "  " + "  ".join(
                    f"{b.batch_id.removeprefix('batch_demo_')}: {b.status} {b.request_completed}/{b.request_total}"
                    for b in job.batches.all()
                )
                if line != last_line:
                    out(f"[{time.strftime('%H:%M:%S')}] {line}")
                    last_line = line
                if job.status != JobStatus.ACTIVE:
                    self._report(job, fake)
                    code = 0 if job.status in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_FAILURES) else 1
                    if options["exit_when_done"]:
                        break
                    out("The service keeps running: explore the web page, then press Ctrl-C.")
                    while not stop and service.poll() is None:
                        time.sleep(0.5)
                    break
                time.sleep(1)
            else:
                if time.monotonic() >= deadline:
                    self.stderr.write("✗ The demo job did not finish in time.")
        finally:
            if service.poll() is None:
                service.send_signal(signal.SIGTERM)
                try:
                    service.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    service.kill()
            fake.stop()
        if code:
            raise SystemExit(code)

    def _report(self, job, fake) -> None:
        out = self.stdout.write
        posts = fake.requests("keboola.create")
        out(f"✓ Job finished: {job.status}")
        out(f"✓ Keboola job {job.keboola_job_id} created ({len(posts)} create request(s) received):")
        for value in posts[-1]["body"]["variableValuesData"]["values"] if posts else []:
            out(f"    {value['name']:<24} {value['value']}")
