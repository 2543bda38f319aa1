"""The secrets admin: write-only values that never reach any page, saves and deletes via services."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.urls import reverse

from polling.models import JobStatus
from polling.tests.factories import PollingJobFactory
from secrets_vault.models import Secret, SecretType
from secrets_vault.tests.factories import KeboolaSecretFactory, OpenAISecretFactory

pytestmark = pytest.mark.django_db

CANARY = "sk-canary-5b1d0e77-admin-must-never-show"
CHANGELIST = reverse("admin:secrets_vault_secret_changelist")
ADD = reverse("admin:secrets_vault_secret_add")


def change_url(secret: Secret) -> str:
    return reverse("admin:secrets_vault_secret_change", args=[secret.pk])


def delete_url(secret: Secret) -> str:
    return reverse("admin:secrets_vault_secret_delete", args=[secret.pk])


def ciphertext(secret: Secret) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM secrets_vault_secret WHERE id = %s", [secret.pk])
        return bytes(cursor.fetchone()[0]).decode()


@pytest.fixture
def browser(client, admin_user):
    client.force_login(admin_user)
    return client


def assert_never_shown(html: str, secret: Secret | None = None) -> None:
    assert CANARY not in html
    if secret is not None:
        token = ciphertext(secret)
        assert token not in html and token[:40] not in html


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- pages -----------------------------------------------------------------------------------


def test_no_page_shows_the_value_or_its_ciphertext(browser):
    secret = OpenAISecretFactory(name="openai-prod", value=CANARY)
    PollingJobFactory(openai_secret=secret)
    pages = [
        CHANGELIST,
        f"{CHANGELIST}?q=openai",
        f"{CHANGELIST}?type__exact=openai",
        ADD,
        change_url(secret),
        reverse("admin:secrets_vault_secret_history", args=[secret.pk]),
        delete_url(secret),
        reverse("admin:polling_pollingjob_changelist"),
        reverse("admin:polling_pollingjob_change", args=[secret.openai_jobs.get().pk]),
        reverse("admin:index"),
    ]
    for url in pages:
        response = browser.get(url)
        assert response.status_code == 200, url
        assert_never_shown(response.content.decode(), secret)


def test_change_page_has_an_empty_password_input(browser):
    secret = OpenAISecretFactory(value=CANARY)
    html = browser.get(change_url(secret)).content.decode()
    assert 'type="password" name="value"' in html
    assert "Leave empty to keep the current value" in html


def test_list_shows_name_type_created_and_jobs_using_it(browser):
    secret = OpenAISecretFactory(name="openai-prod")
    PollingJobFactory(openai_secret=secret)
    PollingJobFactory(openai_secret=secret, status=JobStatus.PAUSED)
    PollingJobFactory(openai_secret=secret, status=JobStatus.FAILED)  # finished: not counted
    html = browser.get(CHANGELIST).content.decode()
    assert "openai-prod" in html
    assert "Active/paused jobs using it" in html
    assert '<td class="field-jobs_using">2</td>' in html


def test_list_makes_a_fixed_number_of_queries(browser, django_assert_max_num_queries):
    for _ in range(15):
        secret = OpenAISecretFactory()
        PollingJobFactory(openai_secret=secret)
    with django_assert_max_num_queries(8):
        response = browser.get(CHANGELIST)
    assert response.status_code == 200


def test_search_and_filter(browser):
    OpenAISecretFactory(name="openai-prod")
    KeboolaSecretFactory(name="keboola-prod")
    assert "keboola-prod" not in browser.get(f"{CHANGELIST}?q=openai").content.decode()
    html = browser.get(f"{CHANGELIST}?type__exact=keboola").content.decode()
    assert "keboola-prod" in html and "openai-prod" not in html


# --- add and change go through the services --------------------------------------------------


def test_add_stores_the_value_encrypted(browser):
    response = browser.post(ADD, {"name": "openai-prod", "type": "openai", "value": f"  {CANARY}  "})
    assert response.status_code == 302
    secret = Secret.objects.get(name="openai-prod")
    assert secret.value == CANARY  # trimmed by the service
    assert CANARY not in ciphertext(secret)
    assert_never_shown(browser.get(response.url).content.decode(), secret)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "new", "type": "openai", "value": ""}, "Value must not be empty."),
        ({"name": "new", "type": "openai", "value": "   "}, "Value must not be empty."),
        (
            {"name": "taken", "type": "openai", "value": CANARY},
            "A secret named &#x27;taken&#x27; already exists.",
        ),
    ],
)
def test_add_shows_service_errors_on_the_form_and_never_echoes_the_value(browser, data, message):
    OpenAISecretFactory(name="taken")
    response = browser.post(ADD, data)
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert CANARY not in html
    assert Secret.objects.count() == 1


def test_change_with_an_empty_value_keeps_the_old_one(browser):
    secret = OpenAISecretFactory(name="old-name", value=CANARY)
    before = ciphertext(secret)
    response = browser.post(change_url(secret), {"name": "new-name", "type": "openai", "value": ""})
    assert response.status_code == 302
    secret.refresh_from_db()
    assert secret.name == "new-name"
    assert secret.value == CANARY
    assert ciphertext(secret) == before


def test_change_with_a_value_replaces_it(browser):
    secret = OpenAISecretFactory(value="sk-old")
    response = browser.post(change_url(secret), {"name": secret.name, "type": "openai", "value": CANARY})
    assert response.status_code == 302
    assert Secret.objects.get(pk=secret.pk).value == CANARY
    history = browser.get(reverse("admin:secrets_vault_secret_history", args=[secret.pk])).content.decode()
    assert "Changed value." in history
    assert_never_shown(history, secret)


def test_change_refuses_a_new_type_while_jobs_use_it(browser):
    secret = OpenAISecretFactory(name="in-use")
    PollingJobFactory(openai_secret=secret)
    response = browser.post(change_url(secret), {"name": "renamed", "type": "keboola", "value": CANARY})
    assert response.status_code == 200
    html = response.content.decode()
    assert "The type of a secret that jobs use cannot change." in html
    assert CANARY not in html
    secret.refresh_from_db()
    assert (secret.name, secret.type) == ("in-use", SecretType.OPENAI)


# --- delete ----------------------------------------------------------------------------------


def test_delete_of_an_unused_secret(browser):
    secret = OpenAISecretFactory()
    PollingJobFactory(openai_secret=secret, status=JobStatus.COMPLETED)
    response = browser.post(delete_url(secret), {"post": "yes"})
    assert response.status_code == 302
    assert not Secret.objects.filter(pk=secret.pk).exists()


def test_delete_of_a_secret_in_use_is_refused_with_a_message(browser):
    secret = OpenAISecretFactory(name="in-use")
    job = PollingJobFactory(openai_secret=secret)
    response = browser.post(delete_url(secret), {"post": "yes"})
    assert response.status_code == 302
    assert response.url == change_url(secret)
    assert Secret.objects.filter(pk=secret.pk).exists()
    assert any(f"used by active or paused job {job.pk}" in m for m in messages_of(response))
    history = browser.get(reverse("admin:secrets_vault_secret_history", args=[secret.pk])).content.decode()
    assert "Deleted" not in history


def test_bulk_delete_is_all_or_nothing(browser):
    free = OpenAISecretFactory(name="free")
    used = OpenAISecretFactory(name="used")
    PollingJobFactory(openai_secret=used)
    data = {"action": "delete_selected", "_selected_action": [free.pk, used.pk], "post": "yes"}
    response = browser.post(CHANGELIST, data)
    assert response.status_code == 302
    assert Secret.objects.filter(name__in=["free", "used"]).count() == 2
    assert any(m.startswith("Nothing was deleted: Secret 'used'") for m in messages_of(response))

    data["_selected_action"] = [free.pk]
    browser.post(CHANGELIST, data)
    assert not Secret.objects.filter(name="free").exists()
    assert Secret.objects.filter(name="used").exists()


def test_bulk_delete_confirmation_page_renders(browser):
    secret = OpenAISecretFactory(value=CANARY)
    response = browser.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [secret.pk]})
    assert response.status_code == 200
    assert "Are you sure" in response.content.decode()
    assert_never_shown(response.content.decode(), secret)
