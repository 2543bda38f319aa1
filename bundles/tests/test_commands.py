"""`manage.py export` and `manage.py import`: files, stdin, dry run, one line per problem."""

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from bundles.tests.world import CANARIES, make_world
from polling.models import PollingJob
from scripts.models import Script

pytestmark = pytest.mark.django_db


def run(*args, stdin: str | None = None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    kwargs = {"stdin": io.StringIO(stdin)} if stdin is not None else {}
    call_command(*args, stdout=out, stderr=err, no_color=True, **kwargs)
    return out.getvalue(), err.getvalue()


def test_export_to_stdout_and_to_a_file_gives_the_same_text(tmp_path):
    make_world()
    printed, _ = run("export")
    target = tmp_path / "bundle.json"
    said, _ = run("export", "--output", str(target))
    assert target.read_text() == printed
    assert "Exported 3 script(s) and 3 job(s)" in said
    assert not any(canary in printed for canary in CANARIES)
    assert not list(tmp_path.glob(".*.tmp"))


def test_import_round_trip_with_a_dry_run_first(tmp_path):
    make_world()
    target = tmp_path / "bundle.json"
    run("export", "-o", str(target))
    PollingJob.objects.all().delete()
    Script.objects.all().delete()

    preview, _ = run("import", str(target), "--dry-run")
    assert "Dry run, nothing written: would create 6" in preview
    assert "+ create" in preview and "nightly-export" in preview
    assert not Script.objects.exists()

    done, _ = run("import", str(target))
    assert "✓ Created 6, updated 0, 0 unchanged." in done
    again, _ = run("export")
    assert again == target.read_text()

    same, _ = run("import", "-", "--json", stdin=target.read_text())
    assert json.loads(same)["changed"] is False


def test_an_invalid_bundle_prints_each_problem_and_fails(tmp_path):
    make_world()
    bundle = json.loads(run("export")[0])
    bundle["scripts"][1]["env"][1]["secret"] = "missing-one"
    bundle["jobs"][0]["poll_interval_seconds"] = "often"
    target = tmp_path / "bad.json"
    target.write_text(json.dumps(bundle))

    out = io.StringIO()
    with pytest.raises(CommandError, match=r"Nothing was imported \(3 errors\)\."):
        call_command("import", str(target), stdout=out, stderr=io.StringIO())
    lines = out.getvalue().splitlines()
    assert any(line.startswith("  scripts[nightly-export].env.TOKEN: Secret 'missing-one'") for line in lines)
    assert any(line.startswith("  jobs[Keboola job].poll_interval_seconds: ") for line in lines)
    assert any(line.startswith("  jobs[Script job].action.script: ") for line in lines)


def test_a_file_that_is_not_json_or_not_there_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(CommandError, match="is not JSON"):
        run("import", str(bad))
    with pytest.raises(CommandError, match="cannot read"):
        run("import", str(tmp_path / "missing.json"))
    with pytest.raises(CommandError, match="cannot write"):
        run("export", "-o", str(tmp_path / "no" / "such" / "dir.json"))
