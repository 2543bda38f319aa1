"""`manage.py apikey create|list|revoke` through call_command."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apikeys.models import ApiKey
from apikeys.services import apikey_authenticate
from scripts.tests.factories import ScriptFactory

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("apikey", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_prints_only_the_key_on_stdout(admin_user):
    ScriptFactory(slug="nightly")
    out, err = run("create", "--name", "deploy", "--user", "admin", "--script", "nightly", "--expires", "30d")
    raw = out.strip()
    assert apikey_authenticate(raw=raw).script.slug == "nightly"
    assert "never shown again" in err and raw not in err


def test_create_json_holds_the_key_and_list_never_does(admin_user):
    out, _ = run("create", "--name", "ops", "--user", "admin", "--scope", "full", "--json")
    created = json.loads(out)
    assert created["scope"] == "full" and created["key"].startswith(created["prefix"])
    listed, _ = run("list", "--json")
    assert json.loads(listed)["keys"][0]["prefix"] == created["prefix"]
    table, _ = run("list")
    for text in (listed, table):
        assert created["key"] not in text
    assert created["prefix"] in table and "full" in table


def test_revoke_by_id_or_prefix(admin_user):
    first = json.loads(run("create", "--name", "a", "--user", "admin", "--json")[0])
    second = json.loads(run("create", "--name", "b", "--user", "admin", "--json")[0])
    assert "revoked" in run("revoke", str(first["id"]))[0]
    assert json.loads(run("revoke", second["prefix"], "--json")[0])["state"] == "revoked"
    assert set(ApiKey.objects.values_list("revoked_at", flat=True)) != {None}
    with pytest.raises(CommandError, match="revoked already"):
        run("revoke", str(first["id"]))
    assert "revoked" in run("list")[0]
    assert "No API keys" not in run("list")[0] and run("list", "--active")[0].startswith("No API keys")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "nobody"], "No user named 'nobody'"),
        (["--user", "admin", "--scope", "root"], "Scope must be one of"),
        (["--user", "admin", "--script", "missing"], "Script 'missing' not found"),
        (["--user", "admin", "--expires", "tomorrowish"], "Expiry must be"),
        (["--user", "admin", "--scope", "full", "--script", "one"], "whole API"),
    ],
)
def test_mistakes_are_one_clear_line(admin_user, args, message):
    ScriptFactory(slug="one")
    with pytest.raises(CommandError, match=message):
        run("create", "--name", "x", *args)
    assert not ApiKey.objects.exists()
