"""Import / export on the System tab in Chromium: download the bundle, preview an import (a dry
run), import it, and see every problem of an invalid one by place."""

from __future__ import annotations

import json

import pytest

from bundles.services import bundle_dumps, bundle_export
from bundles.tests.world import CANARIES, make_world
from polling.models import PollingJob
from scripts.models import Script
from web.tests.browser import expect, open_tab, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# A preview and an import each run every item through the services; generous for a loaded machine.
SERVER_MS = 30_000


def choose(page, path, data) -> None:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    page.set_input_files("#bundle-file", str(path))


def test_download_preview_import_and_errors(page, admin_user, tmp_path):
    make_world()
    sign_in(page)
    open_tab(page, "system")

    with page.expect_download() as caught:
        page.click("#bundle-export")
    text = open(caught.value.path(), encoding="utf-8").read()
    assert caught.value.suggested_filename == "teckochecker-bundle.json"
    assert text == bundle_dumps(bundle_export())
    assert not any(canary in text for canary in CANARIES)

    bundle = json.loads(text)
    bundle["scripts"][0]["memory_mb"] = 1024
    bundle["scripts"].append({"slug": "from-the-page", "name": "From the page", "code": "print(1)\n"})
    choose(page, tmp_path / "changed.json", bundle)
    summary = page.locator("#bundle-summary")
    expect()(summary).to_have_text(
        "Dry run, nothing written: would create 1, would update 1, 5 unchanged.", timeout=SERVER_MS
    )
    expect()(page.locator("#bundle-items tr.bundle-update")).to_contain_text("memory_mb")
    expect()(page.locator("#bundle-items tr.bundle-create")).to_contain_text("from-the-page")
    assert not Script.objects.filter(slug="from-the-page").exists()

    page.click("#bundle-apply", timeout=SERVER_MS)
    expect()(summary).to_have_text("Created 1, updated 1, 5 unchanged.", timeout=SERVER_MS)
    assert Script.objects.get(slug="from-the-page").name == "From the page"
    assert Script.objects.get(slug="every-five").memory_mb == 1024

    choose(page, tmp_path / "same.json", bundle)
    expect()(summary).to_have_text(
        "Nothing to change: everything in the bundle is already here, as it is.", timeout=SERVER_MS
    )
    expect()(page.locator("#bundle-apply")).to_have_count(0)

    bundle["jobs"][0]["openai_secret"] = "gone"
    bundle["scripts"][1]["schedule"] = {"type": "cron", "cron": "every day"}
    choose(page, tmp_path / "bad.json", bundle)
    errors = page.locator("#bundle-errors")
    expect()(errors.locator("p")).to_have_text("Nothing was imported: 3 problem(s).", timeout=SERVER_MS)
    expect()(errors).to_contain_text("jobs[Keboola job].openai_secret: Secret 'gone' does not exist here")
    expect()(errors).to_contain_text("scripts[nightly-export].schedule.cron: A cron expression has 5 fields")
    expect()(errors).to_contain_text("jobs[Script job].action.script: Script 'nightly-export' has errors")
    expect()(page.locator("#bundle-apply")).to_have_count(0)
    assert PollingJob.objects.get(name="Keboola job").openai_secret.name == "openai-prod"

    choose(page, tmp_path / "broken.json", "{not json")
    expect()(errors).to_contain_text("broken.json is not JSON")
