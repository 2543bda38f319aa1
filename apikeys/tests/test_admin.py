"""The API keys admin: the key on the page that answers the save, once; revoke as an action."""

import re

import pytest
from django.urls import reverse

from apikeys.models import ApiKey
from apikeys.services import apikey_authenticate
from scripts.tests.factories import ScriptFactory

pytestmark = pytest.mark.django_db

ADD = reverse("admin:apikeys_apikey_add")
CHANGELIST = reverse("admin:apikeys_apikey_changelist")


@pytest.fixture
def browser(client, admin_user):
    client.force_login(admin_user)
    return client


def test_adding_a_key_shows_it_once(browser, admin_user):
    script = ScriptFactory(slug="nightly")
    page = browser.post(
        ADD, {"name": "deploy", "scope": "scripts:trigger", "script": script.pk, "expires_at": "30d"}
    )
    assert page.status_code == 200 and "no-cache" in page["Cache-Control"]
    raw = re.search(r'value="(tck_[^"]+)"', page.content.decode())[1]
    key = apikey_authenticate(raw=raw)
    assert key.owner == admin_user and key.script == script and key.expires_at is not None
    for url in (CHANGELIST, reverse("admin:apikeys_apikey_change", args=[key.pk]), "/admin/admin/logentry/"):
        later = browser.get(url)
        assert later.status_code in (200, 404) and raw not in later.content.decode()
    assert key.prefix in browser.get(CHANGELIST).content.decode()


def test_a_bad_key_form_says_what_is_wrong(browser):
    page = browser.post(
        ADD, {"name": "x", "scope": "full", "script": ScriptFactory().pk, "expires_at": "soon"}
    )
    assert page.status_code == 200
    text = page.content.decode()
    assert "Expiry must be" in text and "whole API" in text and not ApiKey.objects.exists()


def test_revoke_selected(browser, make_key):
    key, _ = make_key()
    done, _ = make_key(name="gone")
    browser.post(CHANGELIST, {"action": "revoke_selected", "_selected_action": [done.pk]})
    response = browser.post(
        CHANGELIST, {"action": "revoke_selected", "_selected_action": [key.pk, done.pk]}, follow=True
    )
    text = response.content.decode()
    assert "1 API key revoked" in text and "revoked already" in text
    assert ApiKey.objects.filter(revoked_at__isnull=True).count() == 0
