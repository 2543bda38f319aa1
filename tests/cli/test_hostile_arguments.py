"""Every `manage.py` command with wrong, missing and hostile arguments, as a real process
(forked from one that has imported Django, tests/manage_process.py):
one line on stderr starting with `Error:`, exit code 1, no traceback, nothing written.

Add a row to CASES for a new command; commands that do not exist (yet) are skipped.
"""

import os
import sqlite3
from pathlib import Path

import pytest
from django.core.management import get_commands

from tests.manage_process import ManageProcesses

pytestmark = [pytest.mark.slow, pytest.mark.embedded_defaults]

HUGE = "9" * 40
HOSTILE = ["$(touch /tmp/pwned)", "; rm -rf /", "`id`", "a\x1b[31mred", "tab\there", "nl\nline", "'\"", ""]

# (command, argv) - all must fail cleanly.
CASES = [
    ("secret", ["frobnicate"]),
    ("secret", []),
    ("secret", ["add"]),
    ("secret", ["add", "--name", "", "--type", "openai", "--value", "sk-x"]),
    ("secret", ["add", "--name", "n", "--type", "nope", "--value", "sk-x"]),
    ("secret", ["add", "--name", "bell\x07", "--type", "openai", "--value", ""]),
    ("secret", ["delete", "no-such-secret", "--force"]),
    *[("secret", ["delete", value, "--force"]) for value in HOSTILE],
    ("job", ["frobnicate"]),
    ("job", []),
    ("job", ["create"]),
    *[
        ("job", [sub, value])
        for sub in ("show", "pause", "resume", "delete")
        for value in ("abc", "-1", "0", HUGE, "1.5")
    ],
    *[("job", ["show", value]) for value in HOSTILE],
    ("job", ["show", "424242"]),
    ("job", ["update", "1", "--name", "x"]),
    ("job", ["list", "--status", "nope"]),
    ("job", ["list", "--limit", HUGE]),
    (
        "job",
        [
            "create",
            "--name",
            "x",
            "--batch-id",
            "batch_a",
            "--openai-secret",
            HUGE,
            "--keboola-secret",
            "1",
            "--keboola-stack-url",
            "$(id)",
            "--keboola-component-id",
            "c",
            "--keboola-config-id",
            "1",
        ],
    ),  # fmt: skip
    ("script", ["frobnicate"]),
    ("script", []),
    ("script", ["add"]),
    ("script", ["add", "--name", "x", "--every", "5x"]),
    ("script", ["add", "--name", "x", "--every", HUGE + "m"]),
    ("script", ["add", "--name", "x", "--every", "5m", "--cron", "0 3 * * *"]),
    ("script", ["add", "--name", "x", "--cron", "$(id)"]),
    ("script", ["add", "--name", "x", "--timezone", "Europe/Prague"]),
    ("script", ["add", "--name", "x", "--file", "/no/such/file.py"]),
    ("script", ["add", "--name", "x", "--file", "/dev/null", "--python", "; rm -rf /"]),
    ("script", ["add", "--name", "x", "--env", "NO_EQUALS"]),
    ("script", ["add", "--name", "x", "--env-secret", "KEY=`id`"]),
    ("script", ["add", "--name", "x", "--memory", HUGE]),
    ("script", ["add", "--name", "", "--file", "/dev/null"]),
    *[("script", [sub, value]) for sub in ("show", "run", "runs", "delete") for value in HOSTILE],
    *[("script", [sub, value]) for sub in ("output", "cancel") for value in ("abc", "-1", "0", HUGE, "1.5")],
    ("script", ["output", "424242"]),
    ("script", ["cancel", "424242"]),
    ("script", ["run", "424242", "--wait"]),
    ("script", ["edit", "no-such-script", "--name", "x"]),
    ("script", ["env", "frobnicate", "x"]),
    ("script", ["env", "check", "no-such-script"]),
    ("script", ["runs", "x", "--limit", HUGE]),
    ("script", ["list", "--bogus"]),
    ("script", ["delete", "no-such-script", "--force"]),
    ("status", ["--bogus"]),
    ("status", ["extra"]),
    ("doctor", ["--bogus"]),
    ("doctor", ["$(id)"]),
    ("sync_schedules", ["--bogus"]),
    ("sync_schedules", ["; ls"]),
    ("init", ["--bogus"]),
    ("init", ["`id`"]),
    ("apitoken", ["--bogus"]),
    ("apitoken", ["no-such-user\x1b[0m"]),
    ("start", ["--bogus"]),
    ("start", ["--port", "abc"]),
    ("start", ["--port", HUGE]),
    ("stop", ["--bogus"]),
    ("fakeservers", ["--port", "abc"]),
    ("fakeservers", ["--bogus"]),
    ("demo", ["--bogus"]),
    ("bench", ["--bogus"]),
    ("bench", ["--jobs", "abc"]),
    ("export", ["--bogus"]),
    ("export", ["--output", "/no/such/dir/bundle.json"]),
    ("import", []),
    ("import", ["/no/such/bundle.json"]),
    ("import", ["/dev/null"]),
    ("import", ["/dev/null", "--dry-run", "--bogus"]),
    *[("import", [value]) for value in HOSTILE],
]
# Every command now subclasses teckochecker.cli.TeckoCommand; keep these sets for new ones.
NOT_ON_TECKOCOMMAND: set[str] = set()
IN_PROGRESS: set[str] = set()


def _param(command, argv):
    marks = []
    if command in NOT_ON_TECKOCOMMAND:
        reason = f"manage.py {command} is not a TeckoCommand: argparse usage + exit 2 (reported)"
        marks.append(pytest.mark.xfail(strict=True, reason=reason))
    elif command in IN_PROGRESS:
        marks.append(pytest.mark.xfail(strict=False, reason=f"manage.py {command} is still being written"))
    return pytest.param(command, argv, marks=marks, id=f"{command} {' '.join(map(repr, argv))}")


TABLES = [
    "polling_pollingjob",
    "polling_jobbatch",
    "polling_pollinglog",
    "secrets_vault_secret",
    "auth_user",
    "authtoken_token",
    "django_celery_beat_periodictask",
    "scripts_script",
    "scripts_scriptrun",
]


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """A migrated SQLite file with one user, shared by every case (each checks nothing changed),
    and the `manage.py` processes that run the cases in it."""
    folder = tmp_path_factory.mktemp("cli")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "teckochecker.test_settings",
        "DATABASE_URL": f"sqlite:///{folder / 'cli.sqlite3'}",
        "CELERY_BROKER_URL": "filesystem://",
        "DATA_DIR": str(folder / "data"),
        "TECKOCHECKER_ENV_FILE": str(folder / "missing.env"),
    }
    manage = ManageProcesses(env)
    try:
        assert manage("migrate", "-v", "0", timeout=120).returncode == 0
        script = "from django.contrib.auth.models import User; User.objects.create_user('ops', password='long-pass-1234')"
        assert manage("shell", "-c", script).returncode == 0
        yield manage, folder / "cli.sqlite3"
    finally:
        manage.close()


def _snapshot(path: Path) -> dict[str, list]:
    with sqlite3.connect(path) as db:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in TABLES}  # noqa: S608


@pytest.mark.parametrize(("command", "argv"), [_param(c, a) for c, a in CASES])
def test_bad_arguments_fail_cleanly(database, command, argv):
    if command not in get_commands():
        pytest.skip(f"manage.py {command} does not exist yet")
    manage, path = database
    before = _snapshot(path)
    done = manage(command, *argv)
    stderr = done.stderr.strip()
    assert done.returncode == 1, (done.returncode, stderr[-500:], done.stdout[-300:])
    assert "Traceback" not in done.stderr + done.stdout
    assert len(stderr.splitlines()) == 1 and stderr.startswith("Error: "), stderr[-800:]
    assert _snapshot(path) == before, "the command wrote to the database"
    assert not Path("/tmp/pwned").exists()
