"""Strict readers for settings that come from the environment.

Every helper fails loudly with a message that names the variable, so a typo in `.env`
stops start-up with a clear sentence instead of a confusing error much later.
"""

from __future__ import annotations

import base64
import os
import re

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ImproperlyConfigured):
    """A setting read from the environment has a bad value."""


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false (got {raw!r}).")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number (got {raw!r}).") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum} (got {value}).")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum} (got {value}).")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number (got {raw!r}).") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum} (got {value}).")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: set[str]) -> str:
    value = env_str(name, default)
    if value.upper() in {c.upper() for c in choices}:
        return value.upper()
    raise ConfigError(f"{name} must be one of {', '.join(sorted(choices))} (got {value!r}).")


# Values that templates and our own .env.example put where a key belongs. Whole values are
# compared: a generated key is random text and may contain "xXx" or "your-" by chance.
PLACEHOLDER_VALUES = frozenset(
    {
        "",
        "change-me",
        "changeme",
        "change_me",
        "change-this",
        "placeholder",
        "replace-me",
        "secret",
        "todo",
        "xxx",
        "your-key",
        "your-key-here",
        "your-secret-key",
        "your-secret-key-here",
        "your-fernet-key",
        "your-fernet-key-here",
    }
)

_FERNET_KEY = re.compile(r"[A-Za-z0-9_-]{43}=")


def looks_like_placeholder(value: str) -> bool:
    return value.strip().strip("'\"").lower() in PLACEHOLDER_VALUES


def is_fernet_key(value: str) -> bool:
    """A Fernet key is 32 bytes in URL-safe base64: 43 characters and one '=' of padding."""
    if not _FERNET_KEY.fullmatch(value):
        return False
    return len(base64.urlsafe_b64decode(value)) == 32


def fernet_keys_problem(keys: list[str]) -> str | None:
    """Why FERNET_KEYS cannot be used as given (a sentence), or None when every entry is a key."""
    for position, key in enumerate(keys, start=1):
        if not is_fernet_key(key):
            return f"FERNET_KEYS entry {position} is not a valid Fernet key (32 bytes in URL-safe base64, 44 characters)."
    return None
