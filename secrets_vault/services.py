"""Everything that changes secrets. API, admin and `manage.py secret` all call these."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction

from secrets_vault.exceptions import SecretInUse, SecretNameTaken, SecretNotFound, SecretUnreadable
from secrets_vault.fields import UNREADABLE
from secrets_vault.models import Secret, SecretType
from secrets_vault.usage import blocking_users
from teckochecker.errors import ValidationFailed, is_valid_id

MAX_VALUE_LENGTH = 10_000


def _has_control_chars(text: str) -> bool:
    return any(unicodedata.category(ch).startswith("C") for ch in text)


def clean_secret_name(name: object) -> str:
    """The stored form of a secret name; raises ValidationFailed with a readable message."""
    if not isinstance(name, str):
        raise ValidationFailed.from_errors({"name": ["Name must be a string."]})
    cleaned = name.strip()
    if not cleaned:
        raise ValidationFailed.from_errors({"name": ["Name must not be empty."]})
    if len(cleaned) > 255:
        raise ValidationFailed.from_errors({"name": ["Name must be at most 255 characters."]})
    if _has_control_chars(cleaned):
        raise ValidationFailed.from_errors({"name": ["Name must not contain control characters."]})
    return cleaned


def clean_secret_type(type: object) -> str:
    if type not in SecretType.values:
        allowed = ", ".join(SecretType.values)
        raise ValidationFailed.from_errors({"type": [f"Type must be one of: {allowed} (got {type!r})."]})
    return str(type)


def clean_secret_value(value: object) -> str:
    # Messages never echo the value.
    if not isinstance(value, str):
        raise ValidationFailed.from_errors({"value": ["Value must be a string."]})
    cleaned = value.strip()
    if not cleaned:
        raise ValidationFailed.from_errors({"value": ["Value must not be empty."]})
    if len(cleaned) > MAX_VALUE_LENGTH:
        raise ValidationFailed.from_errors(
            {"value": [f"Value must be at most {MAX_VALUE_LENGTH} characters."]}
        )
    if _has_control_chars(cleaned):
        raise ValidationFailed.from_errors({"value": ["Value must not contain control characters."]})
    return cleaned


def secret_get(*, secret_id: int) -> Secret:
    if not is_valid_id(secret_id):
        raise SecretNotFound(f"Secret {secret_id} not found.")
    try:
        return Secret.objects.defer("value").get(pk=secret_id)
    except (Secret.DoesNotExist, ValueError, TypeError, OverflowError):
        raise SecretNotFound(f"Secret {secret_id} not found.") from None


def secret_get_by_name(*, name: str) -> Secret:
    try:
        return Secret.objects.defer("value").get(name=name.strip())
    except Secret.DoesNotExist:
        raise SecretNotFound(f"Secret '{name.strip()}' not found.") from None


def secret_create(*, name: str, type: str, value: str) -> Secret:
    errors: dict[str, list[str]] = {}
    cleaned = {}
    for key, cleaner, raw in (
        ("name", clean_secret_name, name),
        ("type", clean_secret_type, type),
        ("value", clean_secret_value, value),
    ):
        try:
            cleaned[key] = cleaner(raw)
        except ValidationFailed as exc:
            errors.update(exc.errors)
    if errors:
        raise ValidationFailed.from_errors(errors)
    if Secret.objects.filter(name=cleaned["name"]).exists():
        raise SecretNameTaken(f"A secret named '{cleaned['name']}' already exists.")
    try:
        with transaction.atomic():
            return Secret.objects.create(**cleaned)
    except IntegrityError:  # lost a race with another create of the same name
        raise SecretNameTaken(f"A secret named '{cleaned['name']}' already exists.") from None


def secret_update(
    *, secret: Secret, name: str | None = None, type: str | None = None, value: str | None = None
) -> Secret:
    """Change name/type and, when `value` is given and non-empty, the value (write-only)."""
    fields = ["updated_at"]
    if name is not None:
        new_name = clean_secret_name(name)
        if Secret.objects.filter(name=new_name).exclude(pk=secret.pk).exists():
            raise SecretNameTaken(f"A secret named '{new_name}' already exists.")
        secret.name = new_name
        fields.append("name")
    if type is not None:
        new_type = clean_secret_type(type)
        if new_type != secret.type and (blocking := blocking_users(secret.pk)):
            users = " or ".join(registration.name for registration, _ in blocking)
            raise SecretInUse(f"The type of a secret that {users} use cannot change.")
        secret.type = new_type
        fields.append("type")
    if value:
        secret.value = clean_secret_value(value)
        fields.append("value")
    try:
        with transaction.atomic():
            secret.save(update_fields=fields)
    except IntegrityError:
        raise SecretNameTaken(f"A secret named '{secret.name}' already exists.") from None
    return secret


def secret_delete(*, secret: Secret) -> None:
    """Delete a secret that no registered user blocks (`secrets_vault.usage`): for jobs, none
    active or paused; finished jobs keep their history."""
    with transaction.atomic():
        blocking = blocking_users(secret.pk)
        if blocking:
            who = " and ".join(use.description for _, use in blocking)
            advice = "; ".join(dict.fromkeys(use.advice for _, use in blocking))
            raise SecretInUse(f"Secret '{secret.name}' is used by {who}; {advice}.")
        secret.delete()


def secret_reveal(*, secret: Secret) -> str:
    """The decrypted value, for the integrations only. Never log or return it."""
    value = Secret.objects.filter(pk=secret.pk).values_list("value", flat=True).first()
    if value is None:
        raise SecretNotFound(f"Secret {secret.pk} not found.")
    if value is UNREADABLE:
        raise SecretUnreadable(f"Secret '{secret.name}' cannot be decrypted with the configured FERNET_KEYS.")
    return value


def secrets_reveal(*, secret_ids: set[int]) -> dict[int, str | SecretUnreadable]:
    """Several decrypted values in one query, for the integrations only: each existing secret's
    value, or the `SecretUnreadable` error to report. Missing ids are left out."""
    values: dict[int, str | SecretUnreadable] = {}
    for pk, name, value in Secret.objects.filter(pk__in=secret_ids).values_list("pk", "name", "value"):
        values[pk] = (
            SecretUnreadable(f"Secret '{name}' cannot be decrypted with the configured FERNET_KEYS.")
            if value is UNREADABLE
            else value
        )
    return values


@dataclass
class RotationResult:
    rotated: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def secret_rotate_keys() -> RotationResult:
    """Re-encrypt every readable secret with the newest FERNET_KEYS key, in one transaction."""
    result = RotationResult()
    with transaction.atomic():
        for secret in Secret.objects.select_for_update().order_by("id"):
            if secret.value is UNREADABLE:
                result.unreadable.append(secret.name)
                continue
            secret.save(update_fields=["value"])
            result.rotated.append(secret.name)
    return result
