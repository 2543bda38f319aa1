import os
import socket
from datetime import timedelta

import pytest
from django.utils import timezone

from polling.models import ServiceHeartbeat
from polling.services.health import beat_lease_hold, beat_lease_release, liveness

pytestmark = pytest.mark.django_db


@pytest.fixture
def on_host(monkeypatch):
    """Make this process look like it runs on the named host."""

    def move(name: str) -> None:
        monkeypatch.setattr(socket, "gethostname", lambda: name)

    return move


def _beat():
    return ServiceHeartbeat.objects.get(name="beat")


def test_the_first_beat_holds_the_lease_and_renews_it(on_host):
    on_host("host-a")
    assert beat_lease_hold() is True
    first_seen = _beat().last_seen
    assert beat_lease_hold() is True
    assert (_beat().hostname, _beat().pid) == ("host-a", os.getpid())
    assert _beat().last_seen >= first_seen
    assert liveness()["scheduler"]["alive"] is True


def test_a_beat_on_another_host_stands_by_until_the_lease_goes_stale(on_host, settings):
    on_host("host-a")
    assert beat_lease_hold() is True
    on_host("host-b")
    assert beat_lease_hold() is False, "two beats active at once"
    assert _beat().hostname == "host-a"

    stale = timezone.now() - timedelta(seconds=settings.HEARTBEAT_STALE_SECONDS + 1)
    ServiceHeartbeat.objects.filter(name="beat").update(last_seen=stale)
    assert beat_lease_hold() is True
    assert _beat().hostname == "host-b" and _beat().started_at > stale
    on_host("host-a")
    assert beat_lease_hold() is False, "the old holder came back and acted next to the new one"


def test_a_dead_beat_on_this_host_does_not_block_a_restart(on_host):
    on_host("host-a")
    ServiceHeartbeat.objects.create(name="beat", kind="beat", hostname="host-a", pid=2**22 + 12345)
    assert beat_lease_hold() is True
    ServiceHeartbeat.objects.filter(name="beat").update(pid=os.getppid())  # alive, not this process
    assert beat_lease_hold() is False


def test_a_beat_that_stops_cleanly_hands_over_at_once(on_host):
    on_host("host-a")
    assert beat_lease_hold() is True
    on_host("host-b")
    beat_lease_release()  # not the holder: changes nothing
    assert beat_lease_hold() is False
    on_host("host-a")
    beat_lease_release()
    assert liveness()["scheduler"]["alive"] is False
    on_host("host-b")
    assert beat_lease_hold() is True
