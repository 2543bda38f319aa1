"""The Celery app. Workers and beat load Django settings (CELERY_* names) from here."""

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teckochecker.settings")
# Celery's Django fixup runs Django's system checks when a worker or beat starts; the URL checks
# import the whole URLconf (DRF, drf-spectacular, the admin, the views): about 20 MB in every
# Celery process for nothing they use. `manage.py start`, `migrate` and `check` run the checks.
os.environ.setdefault("CELERY_SKIP_CHECKS", "1")

app = Celery("teckochecker")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _lower_worker_priority(**_kwargs) -> None:
    """Polling is background work: a busy worker must not slow the API (WORKER_NICE, 0 = off)."""
    from django.conf import settings

    if settings.WORKER_NICE:
        os.nice(settings.WORKER_NICE)
