from django.db import models

from secrets_vault.fields import UNREADABLE, RotatableEncryptedTextField


class SecretType(models.TextChoices):
    """Kinds of credential. A new kind is one more member here (plus its use in a service)."""

    OPENAI = "openai", "OpenAI API key"
    KEBOOLA = "keboola", "Keboola Storage API token"
    OPENAI_WEBHOOK = "openai_webhook", "OpenAI webhook signing secret (whsec_...)"
    HTTP_HEADER = "http_header", "Header value for a webhook action"


class Secret(models.Model):
    name = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=32, choices=SecretType.choices)
    # Fernet ciphertext at rest; never rendered, logged or returned by any front door.
    value = RotatableEncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["-created_at", "-id"], name="secret_newest_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_readable(self) -> bool:
        return self.value is not UNREADABLE
