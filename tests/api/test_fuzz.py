"""Property-based fuzzing of every endpoint in the project's own OpenAPI schema (schemathesis).

Authenticated as a staff user with a token, through the WSGI app. Bounded: a few dozen examples
per operation, no shrinking deadline, so it stays well under a minute in CI.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from teckochecker.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/schema?format=json", application)

EXAMPLES = 20


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    """What Django's test client does: a request must not close the test's DB connection."""
    signals = (request_started, request_finished)
    for signal in signals:
        signal.disconnect(close_old_connections)
    yield
    for signal in signals:
        signal.connect(close_old_connections)


@pytest.fixture(autouse=True)
def short_streams(settings):
    """The event streams end after their lifetime; a fuzzed call must not wait five minutes."""
    settings.LIVE_STREAM_MAX_SECONDS = 0.2


@pytest.fixture
def staff_token(admin_user):
    return Token.objects.create(user=admin_user).key


@pytest.fixture
def some_data(admin_user):
    """A secret, a job, a script and a run, so the detail endpoints have something to find."""
    from polling.services import job_create
    from secrets_vault.services import secret_create

    openai = secret_create(name="fuzz-openai", type="openai", value="sk-fuzz-value-000")
    keboola = secret_create(name="fuzz-keboola", type="keboola", value="kbc-fuzz-value-000")
    job_create(
        name="fuzz",
        batch_ids=["batch_fuzz"],
        openai_secret_id=openai.pk,
        keboola_secret_id=keboola.pk,
        keboola_stack_url="https://connection.keboola.com",
        keboola_component_id="c",
        keboola_configuration_id="1",
    )
    from scripts.tests.factories import ScriptFactory, ScriptRunFactory

    ScriptRunFactory(script=ScriptFactory(), output="fuzz output\n")


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_survives_fuzzing(case, staff_token, some_data):
    case.call_and_validate(
        headers={"Authorization": f"Token {staff_token}"},
        checks=[not_a_server_error, response_schema_conformance, status_code_conformance],
    )
