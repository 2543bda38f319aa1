"""Fixtures for tests anywhere that use API keys (loaded by the root conftest)."""

import pytest
from rest_framework.test import APIClient


@pytest.fixture
def make_key(admin_user):
    """make_key(**apikey_create arguments) -> (ApiKey, the key itself); owner: the admin user."""
    from apikeys.services import apikey_create

    def make(**kwargs):
        kwargs.setdefault("name", "test key")
        kwargs.setdefault("owner", admin_user)
        return apikey_create(**kwargs)

    return make


@pytest.fixture
def bearer():
    """bearer(key) -> an API client that sends `Authorization: Bearer <key>`."""

    def client(raw: str) -> APIClient:
        c = APIClient()
        c.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return c

    return client
