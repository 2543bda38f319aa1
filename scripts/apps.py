from django.apps import AppConfig


class ScriptsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "scripts"
    verbose_name = "Scripts"

    def ready(self) -> None:
        from scripts.secret_users import USERS
        from secrets_vault.usage import register

        register(USERS)  # the vault refuses to delete a secret a script's variable names
