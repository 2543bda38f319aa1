"""The vault learns who uses a secret through `secrets_vault.usage`; it imports none of its users."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.db.models import Value

from polling.models import JobStatus
from polling.tests.factories import PollingJobFactory
from secrets_vault import selectors, services, usage
from secrets_vault.exceptions import SecretInUse
from secrets_vault.models import Secret, SecretType
from secrets_vault.tests.factories import KeboolaSecretFactory, OpenAISecretFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def scripts_registered():
    """A second app using secrets, as the scripts app will: script 'nightly' uses every secret it
    is asked about; it blocks unless `blocking` is switched off."""
    state = {"blocking": True}

    def find(secret_ids):
        return {
            pk: usage.SecretUse(
                users=["nightly"],
                description="script 'nightly'",
                advice="remove it from the script first",
                blocking=state["blocking"],
            )
            for pk in secret_ids
        }

    saved = dict(usage._registry)
    usage.register(
        usage.SecretUsers(name="scripts", title="Scripts using it", find=find, count=lambda: Value(1))
    )
    yield state
    usage._registry.clear()
    usage._registry.update(saved)


def test_the_vault_imports_no_app_that_uses_it():
    root = Path(settings.BASE_DIR) / "secrets_vault"
    pattern = re.compile(r"^\s*(import|from)\s+(polling|scripts)\b", re.MULTILINE)
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "tests" not in path.parts and pattern.search(path.read_text())
    ]
    assert offenders == []


def test_polling_and_scripts_register_their_users_when_the_apps_are_ready():
    assert [users.name for users in usage.registered()] == ["jobs", "scripts"]


def test_jobs_using_lists_each_active_or_paused_job_once_per_secret():
    shared = OpenAISecretFactory()
    keboola = KeboolaSecretFactory()
    both = PollingJobFactory(openai_secret=shared, keboola_secret=keboola)
    paused = PollingJobFactory(openai_secret=shared, status=JobStatus.PAUSED)
    PollingJobFactory(openai_secret=shared, status=JobStatus.COMPLETED)
    unused = OpenAISecretFactory()

    uses = usage.secret_uses([shared.pk, keboola.pk, unused.pk])

    assert [u.users for u in uses[shared.pk]] == [sorted([both.pk, paused.pk])]
    assert [u.users for u in uses[keboola.pk]] == [[both.pk]]
    assert uses[unused.pk] == []
    assert uses[shared.pk][0].description == f"active or paused jobs {both.pk}, {paused.pk}"
    assert uses[keboola.pk][0].description == f"active or paused job {both.pk}"


def test_delete_names_every_app_that_blocks_it(scripts_registered):
    job = PollingJobFactory()
    secret = Secret.objects.get(pk=job.openai_secret_id)
    with pytest.raises(SecretInUse) as caught:
        services.secret_delete(secret=secret)
    assert caught.value.detail == (
        f"Secret '{secret.name}' is used by active or paused job {job.pk} and script 'nightly'; "
        "delete or finish those jobs first; remove it from the script first."
    )
    assert Secret.objects.filter(pk=secret.pk).exists()


def test_a_use_that_does_not_block_is_listed_but_lets_the_secret_go(scripts_registered):
    scripts_registered["blocking"] = False
    secret = OpenAISecretFactory()
    assert selectors.secret_detail(secret).used_by == ["nightly"]
    services.secret_update(secret=secret, type=SecretType.KEBOOLA)
    services.secret_delete(secret=secret)
    assert not Secret.objects.filter(pk=secret.pk).exists()


def test_a_blocking_use_of_another_app_keeps_the_type(scripts_registered):
    secret = OpenAISecretFactory()
    with pytest.raises(SecretInUse, match="^The type of a secret that scripts use cannot change.$"):
        services.secret_update(secret=secret, type=SecretType.KEBOOLA)
    secret.refresh_from_db()
    assert secret.type == SecretType.OPENAI


def test_used_by_lists_the_users_of_every_app_in_registration_order(scripts_registered):
    job = PollingJobFactory()
    [listed] = [s for s in selectors.secret_list() if s.pk == job.openai_secret_id]
    assert listed.used_by == [job.pk, "nightly"]
