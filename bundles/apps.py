from django.apps import AppConfig


class BundlesConfig(AppConfig):
    name = "bundles"
    verbose_name = "Import and export"
    default_auto_field = "django.db.models.BigAutoField"
