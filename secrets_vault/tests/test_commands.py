"""`manage.py secret ...` through call_command, and a few through a real process."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from polling.models import JobStatus
from polling.tests.factories import PollingJobFactory
from secrets_vault.fields import UNREADABLE
from secrets_vault.models import Secret, SecretType
from secrets_vault.tests.factories import KeboolaSecretFactory, OpenAISecretFactory
from tests.manage_process import ManageProcesses

pytestmark = pytest.mark.django_db

BAD_TYPE = "Type must be one of: {} (got '{{}}').".format(", ".join(SecretType.values))
CANARY = "sk-canary-7f3a9c1e-never-print-me"
ROOT = Path(__file__).resolve().parents[2]


def run(*args, stdin: str | None = None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    extra = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    call_command("secret", *args, stdout=out, stderr=err, **extra)
    return out.getvalue(), err.getvalue()


def fails(*args, stdin: str | None = None) -> str:
    with pytest.raises(CommandError) as exc:
        run(*args, stdin=stdin)
    return str(exc.value)


def stored_ciphertext(secret_id: int) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM secrets_vault_secret WHERE id = %s", [secret_id])
        return bytes(cursor.fetchone()[0])


# --- add -------------------------------------------------------------------------------------


def test_add_with_value_stores_it_encrypted_and_never_prints_it():
    out, err = run("add", "--name", "openai-prod", "--type", "openai", "--value", CANARY)
    secret = Secret.objects.get(name="openai-prod")
    assert out.strip() == f"✓ Secret 'openai-prod' added (ID: {secret.pk})"
    assert CANARY not in out + err
    assert secret.value == CANARY
    assert CANARY.encode() not in stored_ciphertext(secret.pk)


def test_add_reads_the_value_from_stdin_with_a_dash():
    run("add", "--name", "k", "--type", "keboola", "--value", "-", stdin=f"{CANARY}\n")
    assert Secret.objects.get(name="k").value == CANARY


def test_add_prompts_twice_with_hidden_input(monkeypatch):
    prompts = []
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or CANARY)
    out, _ = run("add", "--name", "p", "--type", "openai")
    assert prompts == ["Enter secret value: ", "Confirm secret value: "]
    assert Secret.objects.get(name="p").value == CANARY
    assert CANARY not in out


def test_add_refuses_when_the_two_prompted_values_differ(monkeypatch):
    answers = iter([CANARY, CANARY + "x"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    message = fails("add", "--name", "p", "--type", "openai")
    assert message == "The two values do not match; nothing was stored."
    assert CANARY not in message
    assert not Secret.objects.exists()


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--type", "foo", "--value", "v"], None, BAD_TYPE.format("foo")),
        (["--type", "openai", "--value", "   "], None, "Value must not be empty."),
        (["--type", "openai", "--value", "-"], "", "Value must not be empty."),
    ],
)
def test_add_rejects_bad_input_with_one_message(args, stdin, message):
    assert fails("add", "--name", "n", *args, stdin=stdin) == message
    assert not Secret.objects.exists()


def test_add_rejects_a_taken_name():
    OpenAISecretFactory(name="openai-prod")
    assert fails("add", "--name", "openai-prod", "--type", "openai", "--value", CANARY) == (
        "A secret named 'openai-prod' already exists."
    )
    assert Secret.objects.count() == 1


def test_add_without_required_options_is_an_error():
    assert "the following arguments are required: --type" in fails("add", "--name", "n")


# --- list ------------------------------------------------------------------------------------


def test_list_shows_a_table_with_users_and_no_values():
    secret = OpenAISecretFactory(name="openai-prod", value=CANARY)
    job = PollingJobFactory(openai_secret=secret)
    PollingJobFactory(openai_secret=secret, status=JobStatus.COMPLETED)  # finished: not a user
    out, _ = run("list")
    assert "Stored Secrets" in out
    for header in ("ID", "Name", "Type", "Created At", "Used By"):
        assert header in out
    line = next(line for line in out.splitlines() if "openai-prod" in line)
    assert f"│ {job.pk} " in line.replace(f"│ {secret.pk} ", "", 1)
    assert CANARY not in out


def test_list_json_parses_and_has_no_values():
    secret = KeboolaSecretFactory(name="kbc", value=CANARY)
    out, _ = run("list", "--json")
    data = json.loads(out)
    assert data["total"] == 1
    assert data["secrets"][0]["id"] == secret.pk
    assert data["secrets"][0]["name"] == "kbc"
    assert data["secrets"][0]["readable"] is True
    assert "value" not in data["secrets"][0]
    assert CANARY not in out


def test_list_marks_a_secret_no_key_can_decrypt(settings):
    OpenAISecretFactory(name="old-one")
    OpenAISecretFactory(name="fine")
    settings.FERNET_KEYS = [Fernet.generate_key().decode()]
    OpenAISecretFactory(name="new-one")
    out, _ = run("list")
    assert "old-one  ⚠ unreadable" in out
    assert "new-one  ⚠" not in out
    assert "No configured FERNET_KEYS key decrypts: fine, old-one" in out
    assert json.loads(run("list", "--json")[0])["secrets"][0]["readable"] is True


def test_list_when_empty():
    assert "No secrets stored yet" in run("list")[0]


# --- delete ----------------------------------------------------------------------------------


def test_delete_asks_and_deletes_on_yes():
    OpenAISecretFactory(name="openai-test")
    out, _ = run("delete", "openai-test", stdin="y\n")
    assert "Are you sure you want to delete secret 'openai-test'? [y/N]: " in out
    assert "✓ Secret 'openai-test' deleted" in out
    assert not Secret.objects.exists()


@pytest.mark.parametrize("answer", ["\n", "n\n", "", "yes please\n"])
def test_delete_declined_or_without_an_answer_deletes_nothing(answer):
    OpenAISecretFactory(name="openai-test")
    message = fails("delete", "openai-test", stdin=answer)
    assert message.startswith("Not confirmed; nothing was deleted")
    assert Secret.objects.filter(name="openai-test").exists()


def test_delete_with_force_does_not_ask():
    OpenAISecretFactory(name="openai-test")
    out, _ = run("delete", "openai-test", "--force")
    assert "[y/N]" not in out
    assert not Secret.objects.exists()


def test_delete_refuses_a_secret_in_use():
    secret = OpenAISecretFactory(name="openai-prod")
    job = PollingJobFactory(openai_secret=secret, status=JobStatus.PAUSED)
    message = fails("delete", "openai-prod", "--force")
    assert message == (
        f"Secret 'openai-prod' is used by active or paused job {job.pk}; delete or finish those jobs first."
    )
    assert Secret.objects.filter(pk=secret.pk).exists()


def test_delete_an_unknown_name():
    assert fails("delete", "nope", "--force") == "Secret 'nope' not found."


# --- rotate-keys -----------------------------------------------------------------------------


def test_rotate_keys_reencrypts_with_the_newest_key(settings):
    old = settings.FERNET_KEYS[0]
    secrets = [OpenAISecretFactory(value=f"{CANARY}-{i}") for i in range(2)]
    before = {s.pk: stored_ciphertext(s.pk) for s in secrets}
    new = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new, old]

    out, _ = run("rotate-keys")

    assert "✓ Re-encrypted 2 secrets with the newest key" in out
    settings.FERNET_KEYS = [new]  # the old key can go now
    for s in secrets:
        assert stored_ciphertext(s.pk) != before[s.pk]
        assert Secret.objects.get(pk=s.pk).value == s.value
    assert CANARY not in out


def test_rotate_keys_names_unreadable_secrets_and_rotates_the_rest(settings):
    lost = OpenAISecretFactory(name="lost")
    old = settings.FERNET_KEYS[0]
    middle = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [middle, old]
    kept = OpenAISecretFactory(name="kept", value=CANARY)
    newest = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [newest, middle]  # `old` is gone: "lost" cannot be read

    out = io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command("secret", "rotate-keys", stdout=out)

    assert "✓ Re-encrypted 1 secret with the newest key" in out.getvalue()
    assert str(exc.value).endswith("left as they are: lost")
    settings.FERNET_KEYS = [newest]
    assert Secret.objects.get(pk=kept.pk).value == CANARY
    assert Secret.objects.get(pk=lost.pk).value is UNREADABLE


# --- a real process: one line on stderr, exit code 1, no traceback ---------------------------


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """Run `manage.py` in a process of its own (forked: tests/manage_process.py) against its own
    migrated SQLite file."""
    data = tmp_path_factory.mktemp("cli")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "teckochecker.test_settings",
        "DATABASE_URL": f"sqlite:///{data / 'db.sqlite3'}",
        "DATA_DIR": str(data),
        "PYTHONWARNINGS": "ignore",
    }

    manage = ManageProcesses(env, cwd=ROOT)
    try:
        assert manage("migrate", "-v", "0").returncode == 0
        yield manage
    finally:
        manage.close()


def assert_one_line_error(result: subprocess.CompletedProcess, message: str) -> None:
    assert result.returncode == 1, result
    assert result.stderr == f"Error: {message}\n"
    assert "Traceback" not in result.stdout + result.stderr


def test_process_add_then_errors_are_one_line_with_exit_code_1(cli):
    added = cli("secret", "add", "--name", "proc-openai", "--type", "openai", "--value", "-", stdin=CANARY)
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("✓ Secret 'proc-openai' added (ID: ")

    dup = cli("secret", "add", "--name", "proc-openai", "--type", "openai", "--value", CANARY)
    assert_one_line_error(dup, "A secret named 'proc-openai' already exists.")
    assert_one_line_error(
        cli("secret", "add", "--name", "x", "--type", "bad", "--value", "v"),
        BAD_TYPE.format("bad"),
    )
    assert_one_line_error(cli("secret", "delete", "missing", "--force"), "Secret 'missing' not found.")
    usage = cli("secret", "add", "--name", "x")
    assert_one_line_error(
        usage, "the following arguments are required: --type (see 'manage.py secret add --help')"
    )
    declined = cli("secret", "delete", "proc-openai")  # stdin at EOF: no
    assert declined.returncode == 1
    assert declined.stderr.startswith("Error: Not confirmed")

    listed = cli("secret", "list", "--json")
    assert listed.returncode == 0
    assert [s["name"] for s in json.loads(listed.stdout)["secrets"]] == ["proc-openai"]
    for result in (added, dup, listed):
        assert CANARY not in result.stdout + result.stderr
