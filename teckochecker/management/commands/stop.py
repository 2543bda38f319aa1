"""`manage.py stop`: stop what `manage.py start` (daemon or foreground) is running."""

from __future__ import annotations

import os
import signal
import sys
import time

from teckochecker.cli import TeckoCommand
from teckochecker.management.commands.start import STOP_GRACE_SECONDS, pid_alive, pid_file, running_pid


class Command(TeckoCommand):
    help = "Stop the web server, worker and beat started by `python manage.py start`."
    requires_system_checks = []  # stopping must work even when something else is misconfigured

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--timeout",
            type=float,
            default=STOP_GRACE_SECONDS + 10,
            help="Seconds to wait for a clean stop before killing (default %(default)s).",
        )

    def handle(self, *args, timeout: float, **options) -> None:
        pid = running_pid()
        if pid is None:
            self.stderr.write(f"✗ TeckoChecker is not running (no live pid in {pid_file()}).")
            sys.exit(1)
        # The supervisor forwards SIGTERM to the web server, worker and beat and waits for them.
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_alive(pid):
            self.stderr.write(f"TeckoChecker did not stop within {timeout:g}s: killing it.")
            try:
                os.killpg(pid, signal.SIGKILL)  # a daemon leads its own process group
            except (ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        pid_file().unlink(missing_ok=True)
        self.stdout.write(self.style.SUCCESS("✓ TeckoChecker stopped"))
