"""Import and export through the services: round trip, idempotency, dry run, all-or-nothing."""

import copy
import json

import pytest
from django_celery_beat.models import PeriodicTask

from bundles import services
from bundles.services import BundleInvalid, bundle_dumps, bundle_export, bundle_import
from bundles.tests.world import CANARIES, make_world
from polling.models import BatchStatus, JobBatch, JobStatus, PollingJob, PollingLog
from scripts.models import Script
from scripts.serializers import script_representation
from scripts.services.schedules import NAME_PREFIX
from scripts.services.scripts import UPDATABLE_FIELDS
from secrets_vault.models import Secret

pytestmark = pytest.mark.django_db


def wipe() -> None:
    PollingJob.objects.all().delete()
    for script in Script.objects.all():  # through the model: the periodic tasks go too
        if script.periodic_task_id:
            script.periodic_task.delete()
        script.delete()


def counts() -> tuple[int, int, int, int]:
    return (
        Script.objects.count(),
        PollingJob.objects.count(),
        PeriodicTask.objects.filter(name__startswith=NAME_PREFIX).count(),
        PollingLog.objects.count(),
    )


def test_export_is_deterministic_sorted_and_names_secrets_never_their_values():
    make_world()
    text = bundle_dumps(bundle_export())
    assert text == bundle_dumps(bundle_export())
    assert not any(canary in text for canary in CANARIES)
    bundle = bundle_export()
    assert (bundle["format"], bundle["version"]) == ("teckochecker-bundle", 1)
    assert [s["slug"] for s in bundle["scripts"]] == ["every-five", "nightly-export", "off"]
    # Finished jobs are history and stay out; paused ones keep being paused.
    assert [(j["name"], j["paused"]) for j in bundle["jobs"]] == [
        ("Keboola job", False),
        ("Script job", False),
        ("Webhook job", True),
    ]
    nightly = bundle["scripts"][1]
    assert nightly["env"] == [{"name": "MODE", "value": "prod"}, {"name": "TOKEN", "secret": "hook-header"}]
    assert bundle["jobs"][0]["action"]["secret"] == "keboola-prod"
    assert bundle["jobs"][0]["batch_ids"] == ["batch_a", "batch_b"]


def test_a_bundled_script_holds_every_setting_the_api_shows_and_nothing_else():
    make_world()
    for script in services.export.scripts_query():
        entry = services.export.script_entry(script)
        shown = script_representation(script)
        assert tuple(entry) == services.export.SCRIPT_KEYS
        for key in UPDATABLE_FIELDS:
            expected = sorted(shown[key], key=lambda var: var["name"]) if key == "env" else shown[key]
            assert entry[key] == expected, key


def test_round_trip_export_wipe_import_export_gives_the_same_bundle():
    make_world()
    first = bundle_dumps(bundle_export())
    schedules_before = PeriodicTask.objects.filter(name__startswith=NAME_PREFIX).count()
    wipe()
    assert counts()[:3] == (0, 0, 0)

    report = bundle_import(bundle=json.loads(first))

    assert report.counts() == {"create": 6, "update": 0, "unchanged": 0, "skip": 0}
    assert bundle_dumps(bundle_export()) == first
    # Schedules are made as the scripts service makes them: one beat task per scheduled script.
    tasks = PeriodicTask.objects.filter(name__startswith=NAME_PREFIX)
    assert tasks.count() == schedules_before == 2
    assert Script.objects.get(slug="nightly-export").periodic_task.crontab.timezone.key == "Europe/Prague"
    assert PollingJob.objects.get(name="Webhook job").status == JobStatus.PAUSED


def test_importing_the_same_bundle_again_changes_nothing_and_says_so():
    make_world()
    bundle = bundle_export()
    before = counts()
    stamps = sorted(Script.objects.values_list("updated_at", flat=True))

    report = bundle_import(bundle=bundle)

    assert not report.changed
    assert {i.action for i in report.items} == {"unchanged"}
    assert report.summary().startswith("Nothing to change")
    assert counts() == before
    assert sorted(Script.objects.values_list("updated_at", flat=True)) == stamps


def test_dry_run_reports_what_would_change_and_writes_nothing():
    make_world()
    bundle = bundle_export()
    bundle["scripts"][0]["code"] = "print('changed')\n"
    bundle["jobs"][0]["poll_interval_seconds"] = 600
    bundle["jobs"][2]["paused"] = False
    wipe_target = copy.deepcopy(bundle)
    wipe_target["scripts"].append({"slug": "brand-new", "name": "Brand New", "code": "print(1)\n"})
    before = counts()

    report = bundle_import(bundle=wipe_target, dry_run=True)

    assert report.dry_run and report.changed
    by_key = {(i.kind, i.key): i for i in report.items}
    assert by_key[("script", "every-five")].action == "update"
    assert by_key[("script", "every-five")].fields == ["code"]
    assert by_key[("script", "brand-new")].action == "create"
    assert by_key[("job", "Keboola job")].fields == ["poll_interval_seconds"]
    assert by_key[("job", "Webhook job")].fields == ["paused"]
    assert by_key[("script", "off")].action == "unchanged"
    assert report.summary().startswith("Dry run, nothing written: would create 1, would update 3")
    assert counts() == before
    assert not Script.objects.filter(slug="brand-new").exists()
    assert Script.objects.get(slug="every-five").code == "print(5)\n"
    assert PollingJob.objects.get(name="Webhook job").status == JobStatus.PAUSED


def test_an_unknown_secret_is_named_with_where_it_is_used_and_nothing_is_written():
    make_world()
    bundle = bundle_export()
    wipe()
    Secret.objects.filter(name="hook-header").delete()

    with pytest.raises(BundleInvalid) as caught:
        bundle_import(bundle=bundle)

    errors = caught.value.errors
    assert set(errors) == {
        "scripts[nightly-export].env.TOKEN",
        "jobs[Webhook job].action.secret",
        "jobs[Script job].action.script",  # its script failed: a pointer, not "not found"
    }
    assert (
        "has errors in this bundle (see scripts[nightly-export])"
        in errors["jobs[Script job].action.script"][0]
    )
    assert "Secret 'hook-header' does not exist here" in errors["jobs[Webhook job].action.secret"][0]
    assert "Nothing was imported (3 errors)" in caught.value.detail
    assert counts()[:3] == (0, 0, 0)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (2, "Unsupported bundle version 2: this TeckoChecker reads version 1 (the bundle comes from a newer"),
        (0, "Unsupported bundle version 0: this TeckoChecker reads version 1."),
        ("1", "'version' must be a whole number"),
        (None, "'version' must be a whole number"),
    ],
)
def test_an_unsupported_version_is_refused_before_anything_else(version, message):
    with pytest.raises(BundleInvalid) as caught:
        bundle_import(bundle={"format": "teckochecker-bundle", "version": version, "scripts": "rubbish"})
    assert list(caught.value.errors) == ["version"]
    assert message in caught.value.errors["version"][0]


def test_something_that_is_not_a_bundle_is_refused():
    for thing in ([], "x", {"version": 1}):
        with pytest.raises(BundleInvalid, match="Nothing was imported"):
            bundle_import(bundle=thing)


def test_a_half_invalid_bundle_writes_nothing_and_names_every_bad_item_and_field():
    make_world()
    bundle = bundle_export()
    wipe()
    bundle["scripts"][0]["code"] = "print(\n"
    bundle["scripts"][2]["schedule"] = {"type": "cron", "cron": "61 * * * *"}
    bundle["jobs"][0]["batch_ids"] = ["nope"]
    bundle["jobs"][0]["action"]["stack_url"] = "http://evil.example.com"
    bundle["jobs"][1]["surprise"] = 1
    bundle["scripts"].append({"slug": "Not A Slug", "name": "x"})
    bundle["scripts"].append({"name": "no slug"})

    with pytest.raises(BundleInvalid) as caught:
        bundle_import(bundle=bundle)

    errors = caught.value.errors
    assert set(errors) == {
        "scripts[every-five].code",
        "scripts[off].schedule.cron",
        "scripts[Not A Slug].slug",
        "scripts[4].slug",
        "jobs[Keboola job].batch_ids",
        "jobs[Keboola job].action.stack_url",
        "jobs[Script job].surprise",
    }
    assert (
        "Line 2" in errors["scripts[every-five].code"][0] or "Line 1" in errors["scripts[every-five].code"][0]
    )
    assert "Invalid batch ID format: 'nope'" in errors["jobs[Keboola job].batch_ids"][0]
    assert counts()[:3] == (0, 0, 0)  # nightly-export and Webhook job were valid: not written either


def test_an_update_changes_the_definition_and_keeps_the_job_s_progress():
    make_world()
    job = PollingJob.objects.get(name="Keboola job")
    JobBatch.objects.filter(job=job, batch_id="batch_a").update(status=BatchStatus.COMPLETED, request_total=9)
    bundle = bundle_export()
    entry = bundle["jobs"][0]
    entry["poll_interval_seconds"] = 600
    entry["paused"] = True
    entry["action"]["configuration_id"] = "999"
    entry["notify"]["emails"] = ["c@example.com"]

    report = bundle_import(bundle=bundle)

    item = next(i for i in report.items if i.key == "Keboola job")
    assert (item.action, item.fields) == (
        "update",
        ["action.configuration_id", "notify.emails", "paused", "poll_interval_seconds"],
    )
    job.refresh_from_db()
    assert (job.status, job.poll_interval_seconds, job.keboola_configuration_id) == ("paused", 600, "999")
    assert job.batches.get(batch_id="batch_a").status == BatchStatus.COMPLETED  # progress kept
    assert PollingJob.objects.filter(name="Keboola job").count() == 1
    assert job.logs.filter(status="updated").exists()


def test_a_job_s_batches_secrets_and_action_type_cannot_change_on_import():
    make_world()
    bundle = bundle_export()
    bundle["jobs"][0]["batch_ids"] = ["batch_other"]
    bundle["jobs"][1]["action"] = {"type": "webhook", "url": "https://x.example.com"}
    bundle["jobs"][2]["openai_secret"] = "keboola-prod"

    with pytest.raises(BundleInvalid) as caught:
        bundle_import(bundle=bundle)

    errors = caught.value.errors
    assert set(errors) == {
        "jobs[Keboola job].batch_ids",
        "jobs[Script job].action.type",
        "jobs[Webhook job].openai_secret",
    }
    assert "delete job #" in errors["jobs[Keboola job].batch_ids"][0]


def test_a_finished_job_of_the_same_name_is_never_restarted():
    make_world()
    bundle = bundle_export()
    PollingJob.objects.filter(name="Script job").update(status=JobStatus.COMPLETED)

    report = bundle_import(bundle=bundle)

    item = next(i for i in report.items if i.key == "Script job")
    assert item.action == "skip" and "never restarts a finished job" in item.note
    assert report.summary() == "Nothing to change: 5 unchanged, 1 skipped."
    assert PollingJob.objects.filter(name="Script job").count() == 1


def test_a_script_update_goes_through_the_scripts_service(sent):
    make_world()
    bundle = bundle_export()
    off = bundle["scripts"][2]
    off["enabled"] = True
    off["schedule"] = {"type": "interval", "every": 2, "unit": "hours"}
    off["env"] = [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]

    report = bundle_import(bundle=bundle)

    item = next(i for i in report.items if i.key == "off")
    assert item.fields == ["enabled", "env", "schedule.every", "schedule.type", "schedule.unit"]
    script = Script.objects.get(slug="off")
    assert script.periodic_task.interval.every == 2 and script.periodic_task.enabled
    # The same again: the env order in a hand-written bundle does not count as a change.
    assert not bundle_import(bundle=bundle).changed


def test_a_new_script_keeps_the_bundle_s_safe_name_and_a_job_may_name_it():
    bundle = {
        "format": "teckochecker-bundle",
        "version": 1,
        "scripts": [{"slug": "renamed-long-ago", "name": "Hello", "code": "print(1)\n"}],
        "jobs": [
            {
                "name": "j",
                "batch_ids": ["batch_1"],
                "openai_secret": "o",
                "action": {"type": "script", "script": "renamed-long-ago"},
            }
        ],
    }
    Secret.objects.create(name="o", type="openai", value="sk-x")

    bundle_import(bundle=bundle)

    job = PollingJob.objects.get(name="j")
    assert job.action_script.slug == "renamed-long-ago"
    assert job.action_script.name == "Hello"


def test_two_live_jobs_with_one_name_cannot_be_exported_or_matched():
    make_world()
    bundle = bundle_export()
    PollingJob.objects.filter(name="Old job").update(name="Keboola job", status=JobStatus.ACTIVE)
    with pytest.raises(services.BundleExportConflict, match="are all named 'Keboola job'"):
        bundle_export()
    with pytest.raises(BundleInvalid) as caught:
        bundle_import(bundle=bundle)
    assert "rename all but one" in caught.value.errors["jobs[Keboola job]"][0]


@pytest.mark.django_db(transaction=True)
def test_two_imports_at_once_create_a_new_job_once():
    import threading

    Secret.objects.create(name="o", type="openai", value="sk-x")
    bundle = {
        "format": "teckochecker-bundle",
        "version": 1,
        "jobs": [
            {
                "name": "once",
                "batch_ids": ["batch_1"],
                "openai_secret": "o",
                "action": {"type": "script", "script": "s"},
            }
        ],
        "scripts": [{"slug": "s", "name": "S", "code": "print(1)\n"}],
    }
    start, outcomes = threading.Barrier(2), []

    def run():
        from django.db import connection

        try:
            start.wait()
            outcomes.append(bundle_import(bundle=bundle).counts()["create"])
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == [0, 2]  # the second import found both and changed nothing
    assert PollingJob.objects.filter(name="once").count() == 1
