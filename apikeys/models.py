"""API keys for remote use (`Authorization: Bearer <key>`), next to the staff tokens.

Only a hash of a key is stored: the key itself is shown once, when it is made. A key is random
(256 bits), not a password, so a plain SHA-256 is enough to make the stored hash useless to a
thief, and cheap enough to check on every request.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiKeyScope(models.TextChoices):
    TRIGGER = "scripts:trigger", "Trigger scripts by URL (one script or all)"
    FULL = "full", "The whole API, as its owner"


class ApiKey(models.Model):
    name = models.CharField(max_length=255)
    # The key's first characters (`tck_` and eight more): shown to tell keys apart, and how a
    # presented key finds its row before the hash is compared.
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64)
    scope = models.CharField(max_length=32, choices=ApiKeyScope.choices, default=ApiKeyScope.TRIGGER)
    # scripts:trigger only: the one script the key may trigger (empty: every script). CASCADE, not
    # SET_NULL: a key for a deleted script must not widen to every script.
    script = models.ForeignKey(
        "scripts.Script", null=True, blank=True, on_delete=models.CASCADE, related_name="api_keys"
    )
    # The staff user the key acts as; a key stops working when its owner is no longer active staff.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The rate limit's fixed window (its number since the epoch) and the requests counted in it.
    rate_window = models.BigIntegerField(default=0)
    rate_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def label(self) -> str:
        """How logs and runs name the key: never more of it than the prefix."""
        return f"key '{self.name}' ({self.prefix}…)"

    def state(self, now=None) -> str:
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"
