from django.apps import AppConfig


class PollingConfig(AppConfig):
    name = "polling"
    verbose_name = "Polling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from polling.secret_users import USERS
        from secrets_vault.usage import register

        register(USERS)  # the vault refuses to delete a secret an active or paused job uses
