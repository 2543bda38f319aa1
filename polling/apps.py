from django.apps import AppConfig


class PollingConfig(AppConfig):
    name = "polling"
    verbose_name = "Polling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from polling.secret_users import USERS
        from polling.services.webhooks import webhook_secrets_changed
        from secrets_vault.models import Secret
        from secrets_vault.usage import register

        register(USERS)  # the vault refuses to delete a secret an active or paused job uses
        for signal in (post_save, post_delete):
            signal.connect(webhook_secrets_changed, sender=Secret, dispatch_uid="webhook-secrets")
