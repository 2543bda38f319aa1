"""An encrypted text field that follows FERNET_KEYS at run time and never crashes on read.

django-fernet-fields-v2 caches its keys per field for the life of the process and raises
`InvalidToken` while loading a row that no configured key can decrypt. We read the keys from
settings on each use (cached per key list, so rotation and tests see changes) and load an
unreadable value as `UNREADABLE`, which callers report by name instead of crashing.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.utils.encoding import force_str
from fernet_fields import EncryptedTextField
from fernet_fields.hkdf import derive_fernet_key


class _Unreadable:
    """Marker for a stored value that none of the configured keys can decrypt."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unreadable secret>"

    def __bool__(self) -> bool:
        return False


UNREADABLE = _Unreadable()


@lru_cache(maxsize=8)
def _multifernet(keys: tuple[str, ...], use_hkdf: bool) -> MultiFernet:
    derived = [derive_fernet_key(k) if use_hkdf else k for k in keys]
    return MultiFernet([Fernet(k) for k in derived])


def current_fernet() -> MultiFernet:
    """The MultiFernet for FERNET_KEYS as configured now; the first key encrypts."""
    return _multifernet(tuple(settings.FERNET_KEYS), getattr(settings, "FERNET_USE_HKDF", True))


class RotatableEncryptedTextField(EncryptedTextField):
    @property
    def fernet(self) -> MultiFernet:  # overrides the library's per-process cached value
        return current_fernet()

    def from_db_value(self, value, expression, connection, *args):
        if value is None:
            return None
        try:
            return self.to_python(force_str(self.fernet.decrypt(bytes(value))))
        except InvalidToken:
            return UNREADABLE

    def get_db_prep_save(self, value, connection):
        if value is UNREADABLE:
            raise ValueError("Refusing to save a secret whose stored value could not be decrypted.")
        return super().get_db_prep_save(value, connection)
