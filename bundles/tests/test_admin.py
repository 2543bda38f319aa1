"""Import and export in the admin: linked from the index, staff only, CSRF-checked, a dry run
before anything is written, the services' report and errors."""

import html
import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from bundles.services import bundle_dumps, bundle_export
from bundles.tests.world import CANARIES, make_world
from polling.models import JobStatus, PollingJob
from polling.tests.factories import PollingJobFactory
from scripts.models import Script

pytestmark = pytest.mark.django_db

PAGE = reverse("bundle-admin")
EXPORT = reverse("bundle-admin-export")


def upload(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("teckochecker-bundle.json", text.encode(), content_type="application/json")


def confirmation(page) -> str:
    """The bundle text the dry run's page sends back with its Import button."""
    found = re.search(r'<form method="post" id="bundle-confirm">.*?name="bundle" value="([^"]*)"', page, re.S)
    assert found, "no Import button"
    return html.unescape(found[1])


def test_the_admin_index_links_to_import_and_export(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert f'href="{PAGE}"' in page and f'href="{EXPORT}"' in page
    assert "Import and export" in page


def test_only_staff_reach_the_page_and_the_download(client, django_user_model):
    for url in (PAGE, EXPORT):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    client.force_login(django_user_model.objects.create_user("someone", password="x-long-password-1"))
    assert client.get(EXPORT).status_code == 302
    assert client.post(PAGE, {"file": upload("{}")}).status_code == 302


def test_the_download_is_the_export_s_exact_text_and_no_secret_value(admin_client):
    make_world()
    response = admin_client.get(EXPORT)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="teckochecker-bundle.json"'
    text = response.content.decode()
    assert text == bundle_dumps(bundle_export())
    assert not any(canary in text for canary in CANARIES)


def test_two_live_jobs_with_one_name_are_said_instead_of_a_download(admin_client):
    PollingJobFactory(name="Twin")
    PollingJobFactory(name="Twin")
    response = admin_client.get(EXPORT, follow=True)
    assert response.redirect_chain == [(PAGE, 302)]
    assert "are all named &#x27;Twin&#x27;" in response.content.decode()


def test_a_dry_run_first_then_the_import_of_exactly_what_was_checked(admin_client):
    make_world()
    bundle = bundle_export()
    bundle["scripts"][0]["memory_mb"] = 1024
    bundle["jobs"][2]["paused"] = False

    preview = admin_client.post(PAGE, {"file": upload(bundle_dumps(bundle))})

    assert preview.status_code == 200
    page = preview.content.decode()
    assert "Dry run, nothing written: would create 0, would update 2" in page
    assert "<td>every-five</td><td>update</td><td>memory_mb</td>" in page
    assert Script.objects.get(slug="every-five").memory_mb == 512
    assert PollingJob.objects.get(name="Webhook job").status == JobStatus.PAUSED
    assert json.loads(confirmation(page)) == bundle

    applied = admin_client.post(PAGE, {"bundle": confirmation(page), "confirm": "Import"})

    assert "Created 0, updated 2" in applied.content.decode()
    assert 'id="bundle-confirm"' not in applied.content.decode()
    assert Script.objects.get(slug="every-five").memory_mb == 1024
    assert PollingJob.objects.get(name="Webhook job").status == JobStatus.ACTIVE
    again = admin_client.post(PAGE, {"file": upload(bundle_dumps(bundle))}).content.decode()
    assert "Nothing to change" in again and 'id="bundle-confirm"' not in again


def test_an_invalid_bundle_names_every_place_and_writes_nothing(admin_client):
    make_world()
    bundle = bundle_export()
    PollingJob.objects.all().delete()
    bundle["jobs"][0]["openai_secret"] = "gone"
    bundle["jobs"][1]["poll_interval_seconds"] = 10**6

    page = admin_client.post(PAGE, {"file": upload(bundle_dumps(bundle))}).content.decode()

    assert "Nothing was imported (2 errors)." in page
    assert "<code>jobs[Keboola job].openai_secret</code>" in page
    assert "<code>jobs[Script job].poll_interval_seconds</code>" in page
    assert 'id="bundle-confirm"' not in page
    # A confirmation that skipped the dry run is checked the same way.
    admin_client.post(PAGE, {"bundle": bundle_dumps(bundle), "confirm": "Import"})
    assert not PollingJob.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Choose a bundle file"),
        ({"file": upload("{not json")}, "The file is not JSON"),
        ({"file": SimpleUploadedFile("b.json", b"\xff\xfe")}, "The file is not UTF-8 text."),
    ],
)
def test_a_file_that_is_no_bundle_is_said_plainly(admin_client, data, message):
    page = admin_client.post(PAGE, data).content.decode()
    assert message in page and not Script.objects.exists()


def test_a_file_over_the_request_limit_is_refused(admin_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    page = admin_client.post(PAGE, {"file": upload(" " * 101 + "{}")}).content.decode()
    assert "larger than 100 bytes" in page


def test_a_post_without_the_csrf_token_is_refused(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    make_world()
    bundle = bundle_export()
    bundle["scripts"][0]["memory_mb"] = 1024
    response = client.post(PAGE, {"bundle": bundle_dumps(bundle), "confirm": "Import"})
    assert response.status_code == 403
    assert Script.objects.get(slug="every-five").memory_mb == 512
    # The page's own form carries the token.
    page = client.get(PAGE).content.decode()
    token = re.search(r'id="bundle-check">.*?name="csrfmiddlewaretoken" value="([^"]+)"', page, re.S)[1]
    sent = client.post(
        PAGE, {"bundle": bundle_dumps(bundle), "confirm": "Import", "csrfmiddlewaretoken": token}
    )
    assert sent.status_code == 200
    assert Script.objects.get(slug="every-five").memory_mb == 1024
