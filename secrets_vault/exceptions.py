from teckochecker.errors import Conflict, DomainError, NotFound


class SecretNotFound(NotFound):
    pass


class SecretNameTaken(Conflict):
    pass


class SecretInUse(Conflict):
    pass


class SecretUnreadable(DomainError):
    """No configured FERNET_KEYS key decrypts the stored value."""

    status_code = 409
