from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "live"
    verbose_name = "Live updates"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.backends.signals import connection_created
        from django.db.models.signals import post_migrate

        from live import triggers, wakeup

        # Triggers live in code, not in one migration: SQLite drops a table's triggers whenever
        # a later migration rebuilds that table, so they are (re)installed after every migrate.
        post_migrate.connect(triggers.install_after_migrate, sender=self)
        connection_created.connect(wakeup.watch_connection)
