from django.apps import AppConfig


class SecretsVaultConfig(AppConfig):
    name = "secrets_vault"
    verbose_name = "Secrets vault"
    default_auto_field = "django.db.models.BigAutoField"
