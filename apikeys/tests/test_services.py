import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys import services
from apikeys.exceptions import ApiKeyRejected, ApiKeyRevoked
from apikeys.models import ApiKey
from scripts.tests.factories import ScriptFactory
from teckochecker.errors import ValidationFailed

pytestmark = pytest.mark.django_db


def test_create_stores_only_a_hash_and_the_prefix(make_key):
    key, raw = make_key(name="deploy hook")
    assert raw.startswith("tck_") and len(raw) == 4 + 43
    stored = ApiKey.objects.get(pk=key.pk)
    assert stored.prefix == raw[:12]
    assert stored.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in repr(stored.__dict__)


def test_authenticate_accepts_the_key_and_records_its_use_at_most_once_a_minute(
    make_key, django_assert_num_queries
):
    key, raw = make_key()
    now = timezone.now()
    assert services.apikey_authenticate(raw=raw, now=now).pk == key.pk
    assert ApiKey.objects.get(pk=key.pk).last_used_at == now
    with django_assert_num_queries(1):  # the lookup only: no write within the minute
        services.apikey_authenticate(raw=raw, now=now + timedelta(seconds=30))
    services.apikey_authenticate(raw=raw, now=now + timedelta(seconds=61))
    assert ApiKey.objects.get(pk=key.pk).last_used_at == now + timedelta(seconds=61)


@pytest.mark.parametrize(
    "presented",
    ["", "tck_", "nonsense", "tck_" + "A" * 43, "tck_" + "x" * 500],
)
def test_authenticate_refuses_wrong_keys_alike(make_key, presented):
    make_key()
    with pytest.raises(ApiKeyRejected, match="^Invalid API key.$"):
        services.apikey_authenticate(raw=presented)


def test_authenticate_refuses_a_key_with_the_right_prefix_but_a_wrong_rest(make_key):
    _key, raw = make_key()
    with pytest.raises(ApiKeyRejected, match="^Invalid API key.$"):
        services.apikey_authenticate(raw=raw[:-1] + ("a" if raw[-1] != "a" else "b"))


def test_authenticate_says_a_key_was_revoked_or_expired(make_key, admin_user):
    revoked, raw_revoked = make_key(name="old")
    services.apikey_revoke(key=revoked)
    with pytest.raises(ApiKeyRejected, match="was revoked"):
        services.apikey_authenticate(raw=raw_revoked)
    _expiring, raw_expiring = make_key(name="brief", expires_at="1h")
    with pytest.raises(ApiKeyRejected, match="expired"):
        services.apikey_authenticate(raw=raw_expiring, now=timezone.now() + timedelta(hours=2))
    _key, raw = make_key(name="staff gone")
    admin_user.is_staff = False
    admin_user.save()
    with pytest.raises(ApiKeyRejected, match="no longer an active staff user"):
        services.apikey_authenticate(raw=raw)


def test_revoke_twice_is_a_conflict(make_key):
    key, _ = make_key()
    services.apikey_revoke(key=key)
    with pytest.raises(ApiKeyRevoked):
        services.apikey_revoke(key=key)


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"name": "  "}, "name"),
        ({"scope": "admin"}, "scope"),
        ({"expires_at": "yesterday"}, "expires_at"),
        ({"expires_at": "2001-01-01"}, "expires_at"),
        ({"scope": "full", "script": "SCRIPT"}, "script"),
    ],
)
def test_create_names_the_bad_field(make_key, arguments, field):
    if arguments.get("script") == "SCRIPT":
        arguments["script"] = ScriptFactory()
    with pytest.raises(ValidationFailed) as raised:
        make_key(**arguments)
    assert field in raised.value.errors


def test_create_refuses_an_owner_who_is_not_staff(make_key, django_user_model):
    someone = django_user_model.objects.create_user(username="someone", password="x-y-z-1-2-3")
    with pytest.raises(ValidationFailed, match="active staff"):
        make_key(owner=someone)


@pytest.mark.parametrize("text", ["30d", "12h", "8w", "2099-01-31", "2099-01-31T10:00:00Z"])
def test_expiry_accepts_spans_dates_and_date_times(text):
    assert services.clean_expires_at(text) > timezone.now()


def test_rate_take_counts_in_a_fixed_window(make_key, settings):
    settings.API_KEY_RATE_LIMIT = "3/minute"
    key, _ = make_key()
    start = 1_800_000_000.0  # the start of a minute
    assert [services.apikey_rate_take(key=key, now=start + i) for i in range(3)] == [None, None, None]
    assert services.apikey_rate_take(key=key, now=start + 10) == 50  # seconds until the next minute
    assert services.apikey_rate_take(key=key, now=start + 60) is None  # a new window


def test_rate_limit_zero_turns_it_off(make_key, settings):
    settings.API_KEY_RATE_LIMIT = "0/minute"
    key, _ = make_key()
    assert all(services.apikey_rate_take(key=key) is None for _ in range(5))
