import pytest
from django.db import connection

from polling.models import JobStatus
from polling.tests.factories import PollingJobFactory
from secrets_vault.models import Secret
from secrets_vault.tests.factories import KeboolaSecretFactory, OpenAISecretFactory

pytestmark = pytest.mark.django_db
URL = "/api/admin/secrets"


def test_create_returns_201_without_the_value(api):
    response = api.post(
        URL, {"name": "openai-prod", "type": "openai", "value": "  sk-live-abc  "}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) >= {"id", "name", "type", "created_at"}
    assert body["name"] == "openai-prod" and body["type"] == "openai"
    assert "value" not in body and "sk-live-abc" not in response.content.decode()
    assert Secret.objects.get(pk=body["id"]).value == "sk-live-abc"  # trimmed


def test_column_holds_ciphertext_not_the_value(api):
    api.post(URL, {"name": "k", "type": "keboola", "value": "plain-token-123"}, format="json")
    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM secrets_vault_secret")
        raw = bytes(cursor.fetchone()[0])
    assert b"plain-token-123" not in raw
    assert raw.startswith(b"gAAAAA")  # a Fernet token


def test_create_with_taken_name_is_409(api):
    OpenAISecretFactory(name="dup")
    response = api.post(URL, {"name": "dup", "type": "openai", "value": "x"}, format="json")
    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "", "type": "openai", "value": "x"}, "name"),
        ({"name": "n" * 256, "type": "openai", "value": "x"}, "name"),
        ({"name": "n", "type": "aws", "value": "x"}, "type"),
        ({"name": "n", "type": "openai", "value": "   "}, "value"),
        ({"name": "n", "type": "openai"}, "value"),
        ({"name": "bad\x00name", "type": "openai", "value": "x"}, "name"),
        ({"name": None, "type": "openai", "value": "x"}, "name"),
    ],
)
def test_invalid_create_is_400_with_field_errors(api, body, field):
    response = api.post(URL, body, format="json")
    assert response.status_code == 400
    data = response.json()
    assert field in data["errors"] and data["detail"]
    assert Secret.objects.count() == 0


def test_list_is_wrapped_newest_first(api):
    first = OpenAISecretFactory()
    second = KeboolaSecretFactory()
    data = api.get(URL).json()
    assert data["total"] == 2
    assert [s["id"] for s in data["secrets"]] == [second.pk, first.pk]
    assert all("value" not in s for s in data["secrets"])


def test_detail_and_404(api):
    secret = OpenAISecretFactory()
    assert api.get(f"{URL}/{secret.pk}").json()["name"] == secret.name
    assert api.get(f"{URL}/999999").status_code == 404
    assert api.get(f"{URL}/99999999999999999999999").status_code == 404


def test_delete_unused_secret(api):
    secret = OpenAISecretFactory(name="gone")
    response = api.delete(f"{URL}/{secret.pk}")
    assert response.status_code == 200
    assert response.json() == {"message": "Secret 'gone' deleted successfully", "success": True}
    assert not Secret.objects.filter(pk=secret.pk).exists()


def test_delete_secret_used_by_active_job_is_409_naming_the_job(api):
    job = PollingJobFactory()
    response = api.delete(f"{URL}/{job.openai_secret_id}")
    assert response.status_code == 409
    assert str(job.pk) in response.json()["detail"]
    assert Secret.objects.filter(pk=job.openai_secret_id).exists()


def test_delete_secret_of_finished_job_keeps_the_job(api):
    job = PollingJobFactory(status=JobStatus.COMPLETED)
    assert api.delete(f"{URL}/{job.keboola_secret_id}").status_code == 200
    job.refresh_from_db()
    assert job.keboola_secret_id is None


def test_trailing_slash_is_served_without_redirect(api):
    assert api.get(URL + "/").status_code == 200


def test_anonymous_is_rejected(anon):
    assert anon.get(URL).status_code in (401, 403)
    assert anon.post(URL, {"name": "a", "type": "openai", "value": "v"}, format="json").status_code in (
        401,
        403,
    )
