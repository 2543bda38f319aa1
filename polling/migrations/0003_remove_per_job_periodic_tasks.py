"""Delete the per-job django-celery-beat PeriodicTasks of versions before the dispatcher.

Beat would still run them, and each would poll its job outside the dispatcher's leases.
"""

from django.db import migrations
from django.utils import timezone

PER_JOB_TASK_PREFIX = "teckochecker.poll-job."


def remove_per_job_tasks(apps, schema_editor) -> None:
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    removed, _ = PeriodicTask.objects.filter(name__startswith=PER_JOB_TASK_PREFIX).delete()
    if removed:
        # A running beat reloads its schedule when this changes (what PeriodicTask's signals do).
        PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("polling", "0002_actions_follow_notify_webhooks"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(remove_per_job_tasks, migrations.RunPython.noop)]
