"""The Celery app. Workers and beat load Django settings (CELERY_* names) from here."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "teckochecker.settings")

app = Celery("teckochecker")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
