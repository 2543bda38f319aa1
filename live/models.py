"""The change feed: one row per change of something the live streams report.

Rows are written by database triggers (`live/triggers.py`), so every write path (services,
conditional UPDATEs, the admin, a bulk delete) is covered without each one remembering to. The
row says only what changed (topic and id); a stream reads the current state when it sends the
event. The id is the event id that clients resume from (`Last-Event-ID`).
"""

from django.db import models
from django.db.models.functions import Now


class Topic(models.TextChoices):
    JOB = "job", "A polling job, its batches or its Keboola job"
    LOG = "log", "A new entry in a job's log"
    RUN = "run", "A script run's state"
    OUTPUT = "output", "A script run's output (only the run's own stream reports it)"
    SCRIPT = "script", "A script: created, renamed, deleted, its environment's state"


class Change(models.Model):
    topic = models.CharField(max_length=16, choices=Topic.choices)
    object_id = models.BigIntegerField()
    created_at = models.DateTimeField(db_default=Now(), db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"#{self.pk} {self.topic} {self.object_id}"
