"""`manage.py demo`: the whole product working end to end, with no real credentials.

It starts the fake OpenAI and Keboola servers, a throw-away database under DATA_DIR/demo and
the real service (web, workers, beat), creates two secrets and a job watching three batches
that finish within a minute, runs a small script in its sandbox and prints its output, and
narrates until Keboola has been triggered.
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
DEMO_SCRIPT = """\
import os, platform

print(f"Hello from script {os.environ['TECKOCHECKER_SCRIPT']}, run {os.environ['TECKOCHECKER_RUN_ID']}")
print(f"Python {platform.python_version()}, user id {os.getuid()}, working directory {os.getcwd()}")
print("Greeting from its settings:", os.environ["GREETING"])
"""


class Command(TeckoCommand):
    help = "Run a self-contained demo against local fake OpenAI and Keboola servers."
    stop_requested = False  # set by SIGINT/SIGTERM once the service runs (stop_on_signals)

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
        password = self.prepare_database()
        fake = self.start_fakes(port=options["fake_port"], finish_within=options["finish_within"])
        try:
            job = self.create_demo_job(fake)
            script = self.create_demo_script()
            out = self.stdout.write
            out("TeckoChecker demo")
            out(f"  fake OpenAI + Keboola : {fake.url}")
            out(
                f"  web page              : http://127.0.0.1:{options['port']}/web   (user demo / {password})"
            )
            out(f"  demo job              : #{job.pk} watching 3 batches, checked every 5 s")
            out(f"  demo script           : {script.slug} (runs once, in its own sandbox)")
            service = self.start_service(port=options["port"], quiet=options["exit_when_done"])
            self.stop_on_signals()
            try:
                script_ok = self.run_demo_script(script.pk, service, timeout=options["timeout"])
                code = self.watch(
                    job.pk,
                    fake,
                    service,
                    timeout=options["timeout"],
                    exit_when_done=options["exit_when_done"],
                )
                code = code or (0 if script_ok else 1)
            finally:
                self.stop_service(service)
        finally:
            fake.stop()
        if code:
            raise SystemExit(code)

    # The steps of the demo, each callable on its own (fakes/tests/test_demo.py).

    def stop_on_signals(self) -> None:
        """From now on SIGINT/SIGTERM end the watch, so the service is always stopped cleanly."""

        def request_stop(*_) -> None:
            self.stop_requested = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

    def prepare_database(self) -> str:
        """Migrate the demo database and create the `demo` superuser; returns its password."""
        from django.contrib.auth import get_user_model

        call_command("migrate", interactive=False, verbosity=0)
        password = secrets.token_urlsafe(12)
        get_user_model().objects.create_superuser("demo", "demo@example.invalid", password)
        return password

    def start_fakes(self, *, port: int, finish_within: float):
        """Start the fake OpenAI + Keboola servers with three batches that finish within
        `finish_within` seconds (two complete, one fails) and a Keboola job that succeeds."""
        from fakes.server import FakeServer

        try:
            fake = FakeServer(port=port).start()
        except OSError as exc:
            raise CommandError(f"Cannot start the fake servers on port {port}: {exc}") from None
        fake.add_batch("batch_demo_alpha", finish_after=finish_within * 0.45, outcome="completed", total=120)
        fake.add_batch("batch_demo_beta", finish_after=finish_within * 0.75, outcome="completed", total=80)
        fake.add_batch("batch_demo_gamma", finish_after=finish_within, outcome="failed", total=60)
        fake.configure_keboola(start_after=2, finish_after=6, outcome="success")
        return fake

    def create_demo_job(self, fake):
        """Two secrets and a job watching the fake's three batches, checked every 5 s."""
        from polling.services import job_create
        from secrets_vault.services import secret_create

        openai_secret = secret_create(
            name="demo-openai", type="openai", value="sk-demo-" + secrets.token_hex(16)
        )
        keboola_secret = secret_create(
            name="demo-keboola", type="keboola", value="kbc-demo-" + secrets.token_hex(16)
        )
        return job_create(
            name="Demo: three batches",
            batch_ids=["batch_demo_alpha", "batch_demo_beta", "batch_demo_gamma"],
            openai_secret_id=openai_secret.pk,
            keboola_secret_id=keboola_secret.pk,
            keboola_stack_url=fake.stack_url,
            keboola_component_id="kds-team.app-custom-python",
            keboola_configuration_id="demo-123",
            poll_interval_seconds=5,
        )

    def create_demo_script(self):
        """A small script with one plain variable; it runs by hand (`run_demo_script`)."""
        from scripts.services import script_create

        return script_create(
            name="Demo: hello", code=DEMO_SCRIPT, env=[{"name": "GREETING", "value": "have a nice day"}]
        )

    def run_demo_script(self, script_id: int, service, *, timeout: float) -> bool:
        """Run the demo script once (its environment is built first, in the background) and print
        its output; True when it succeeded."""
        from scripts.models import FINISHED_RUN_STATES, RunState, Script
        from scripts.services import run_get, script_run_now

        run = script_run_now(script=Script.objects.get(pk=script_id))
        self.stdout.write(f"[{time.strftime('%H:%M:%S')}]   script: run #{run.pk} queued")
        deadline = time.monotonic() + timeout
        while not self.stop_requested and time.monotonic() < deadline and service.poll() is None:
            run = run_get(run_id=run.pk)
            if run.state in FINISHED_RUN_STATES:
                mark = "✓" if run.state == RunState.SUCCEEDED else "✗"
                self.stdout.write(
                    f"{mark} Script {run.script.slug} {run.state} in {run.duration_seconds:.2f} s; its output:"
                )
                for line in run.output.splitlines() or [run.message]:
                    self.stdout.write(f"    {line}")
                return run.state == RunState.SUCCEEDED
            time.sleep(0.5)
        self.stderr.write("✗ The demo script did not finish in time.")
        return False

    def start_service(self, *, port: int, quiet: bool) -> subprocess.Popen:
        """`manage.py start` (web, worker, beat) in a child process; `quiet` drops its output."""
        return subprocess.Popen(
            [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "start", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if quiet else None,
            stderr=subprocess.STDOUT if quiet else None,
        )

    def watch(self, job_id: int, fake, service, *, timeout: float, exit_when_done: bool) -> int:
        """Narrate the job's batches until it leaves `active`, then report; returns the exit code.

        Ends early once `stop_requested` (SIGINT/SIGTERM, see `stop_on_signals`) or when the
        service dies. Unless `exit_when_done`, it then waits (the service keeps running) until
        one of those.
        """
        from polling.models import JobStatus

        deadline = time.monotonic() + timeout
        last_line = ""
        while not self.stop_requested and time.monotonic() < deadline and service.poll() is None:
            job, last_line = self.show_progress(job_id, last_line)
            if job.status != JobStatus.ACTIVE:
                self._report(job, fake)
                done = job.status in (JobStatus.COMPLETED, JobStatus.COMPLETED_WITH_FAILURES)
                if not exit_when_done:
                    self.stdout.write("The service keeps running: explore the web page, then press Ctrl-C.")
                    while not self.stop_requested and service.poll() is None:
                        time.sleep(0.5)
                return 0 if done else 1
            time.sleep(1)
        if time.monotonic() >= deadline:
            self.stderr.write("✗ The demo job did not finish in time.")
        return 1

    def show_progress(self, job_id: int, last_line: str):
        """Read the job with its batches; write a progress line if it differs from `last_line`.
        Returns (job, the current line)."""
        from polling.models import PollingJob

        job = PollingJob.objects.prefetch_related("batches").get(pk=job_id)
        line = "  " + "  ".join(
            f"{b.batch_id.removeprefix('batch_demo_')}: {b.status} {b.request_completed}/{b.request_total}"
            for b in job.batches.all()
        )
        if line != last_line:
            self.stdout.write(f"[{time.strftime('%H:%M:%S')}] {line}")
        return job, line

    @staticmethod
    def stop_service(service: subprocess.Popen) -> None:
        """SIGTERM (a clean stop of web, worker and beat), SIGKILL after 30 s."""
        if service.poll() is None:
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(timeout=30)
            except subprocess.TimeoutExpired:
                service.kill()

    def _report(self, job, fake) -> None:
        out = self.stdout.write
        posts = fake.requests("keboola.create")
        out(f"✓ Job finished: {job.status}")
        out(f"✓ Keboola job {job.keboola_job_id} created ({len(posts)} create request(s) received):")
        for value in posts[-1]["body"]["variableValuesData"]["values"] if posts else []:
            out(f"    {value['name']:<24} {value['value']}")
