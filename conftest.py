import pytest
from rest_framework.test import APIClient

pytest_plugins = [
    "fakes.pytest_plugin",
    "scripts.tests.fixtures",
    "apikeys.tests.fixtures",
    "tests.phases",
    "tests.configurations",
]


@pytest.fixture(autouse=True)
def _stop_live_hub():
    """The live streams' reader thread (started by a test that opened a stream) holds a
    database connection; it ends with the test, so none is open when the test database is
    dropped (PostgreSQL refuses to drop a database in use)."""
    yield
    from live.hub import stop

    stop()


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_user(
        username="admin", password="a-strong-test-password", is_staff=True, is_superuser=True
    )


@pytest.fixture
def api(admin_user):
    """An API client signed in as a staff user (token auth, like a script)."""
    from rest_framework.authtoken.models import Token

    client = APIClient()
    token = Token.objects.create(user=admin_user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def anon():
    return APIClient()
