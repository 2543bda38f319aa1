"""The triggers fill the change feed for every write path, and only for news."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from live import triggers
from live.feed import changes_prune, changes_read
from live.models import Change
from polling.models import PollingJob
from polling.tests.factories import PollingJobFactory
from scripts.models import ScriptRun
from scripts.tests.factories import ScriptRunFactory

pytestmark = pytest.mark.django_db(transaction=True)


def changes_since(start: int) -> list[tuple[str, int]]:
    return list(Change.objects.filter(pk__gt=start).order_by("pk").values_list("topic", "object_id"))


def newest() -> int:
    return Change.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def test_every_trigger_is_installed_after_migrate_and_again_after_a_table_is_rebuilt():
    names = {f"live_{w.name}" for w in triggers.WATCHES}
    assert triggers.installed() == names
    call_command("migrate", "live", "zero", verbosity=0)  # the table goes, and with it the triggers
    assert triggers.installed() == set()
    PollingJobFactory()  # writes still work
    call_command("migrate", verbosity=0)
    assert triggers.installed() == names


def test_news_is_recorded_and_bookkeeping_is_not():
    job = PollingJobFactory()
    run = ScriptRunFactory()
    start = newest()
    # Bookkeeping: a lease, a due time, a run's lease renewal.
    PollingJob.objects.filter(pk=job.pk).update(lease_token="x", next_check_at=timezone.now())
    ScriptRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now())
    assert changes_since(start) == []
    # News, through conditional UPDATEs that no model signal would see.
    PollingJob.objects.filter(pk=job.pk).update(status="paused")
    job.batches.update(request_completed=3)
    ScriptRun.objects.filter(pk=run.pk).update(output="hi\n")
    ScriptRun.objects.filter(pk=run.pk).update(state="running")
    run.script.__class__.objects.filter(pk=run.script_id).update(env_state="installing")
    assert changes_since(start) == [
        ("job", job.pk),
        ("job", job.pk),
        ("output", run.pk),
        ("run", run.pk),
        ("script", run.script_id),
    ]
    # Read back: one event per object per read, the last one carrying the state.
    entries = changes_read(after=start)
    assert [e.data is not None for e in entries] == [False, True, False, True, True]


def test_old_changes_are_pruned():
    PollingJobFactory()
    Change.objects.update(created_at=timezone.now() - timedelta(hours=25))
    PollingJobFactory()
    assert changes_prune(hours=24) >= 2
    assert Change.objects.count() == 2  # the new job and its batch
