"""GET /api/events and GET /api/runs/{id}/stream through the API, as a client sees them: the
change feed filled by the real triggers, read by the real hub thread."""

from __future__ import annotations

import time

import pytest

from live.client import parse
from live.models import Change
from live.streams import StreamSlot
from polling.models import JobBatch, JobStatus, PollingJob
from polling.services import job_pause
from polling.tests.factories import PollingJobFactory, PollingLogFactory
from scripts.models import RunState, ScriptRun
from scripts.tests.factories import ScriptRunFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def quick(settings):
    settings.LIVE_HEARTBEAT_SECONDS = 0.2
    settings.LIVE_POLL_SECONDS = 0.05


class Stream:
    """An open stream read event by event; heartbeats let a read give up on time."""

    def __init__(self, response):
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/event-stream")
        self.response = response
        self.chunks = iter(response.streaming_content)

    def until(self, predicate, timeout: float = 10.0) -> list:
        """Events up to and including the first that satisfies `predicate`."""
        seen, end = [], time.monotonic() + timeout
        while time.monotonic() < end:
            event = self._next()
            if event is None:
                continue
            seen.append(event)
            if predicate(event):
                return seen
        raise AssertionError(f"no such event within {timeout} s; got {[(e.name, e.data) for e in seen]}")

    def quiet(self, seconds: float = 0.6) -> list:
        """Every event that arrives within `seconds`."""
        seen, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            event = self._next()
            if event is not None:
                seen.append(event)
        return seen

    def _next(self):
        # parse() yields only events; a heartbeat comment ends a read without one.
        for chunk in self.chunks:
            if chunk.startswith((b":", b"retry:")):
                return None
            return next(parse([chunk]))
        raise AssertionError("the stream ended")

    def close(self):
        self.response.close()


def open_events(api, **headers) -> Stream:
    return Stream(api.get("/api/events", HTTP_ACCEPT="text/event-stream", **headers))


def test_a_job_status_change_and_a_new_log_entry_arrive_as_events(api):
    job = PollingJobFactory(name="watched")
    stream = open_events(api)
    ready = stream.until(lambda e: e.name == "ready")[-1]
    assert int(ready.id) == ready.value["last_event_id"]

    job_pause(job=job)
    event = stream.until(lambda e: e.name == "job")[-1]
    assert (event.value["id"], event.value["status"], event.value["name"]) == (job.pk, "paused", "watched")

    JobBatch.objects.filter(job=job).update(status="completed", request_completed=5, request_total=5)
    event = stream.until(lambda e: e.name == "job")[-1]
    assert (
        event.value["completed_count"] == 1 and event.value["batches"][0]["request_counts"]["completed"] == 5
    )

    log = PollingLogFactory(job=job, message="something happened")
    event = stream.until(lambda e: e.name == "log")[-1]
    assert (event.value["id"], event.value["job_id"], event.value["message"]) == (
        log.pk,
        job.pk,
        "something happened",
    )

    PollingJob.objects.filter(pk=job.pk).delete()
    event = stream.until(lambda e: e.name == "job" and e.value.get("deleted"))[-1]
    assert event.value == {"id": job.pk, "deleted": True}
    stream.close()


def test_resuming_with_last_event_id_gives_every_change_after_it_once(api):
    jobs = [PollingJobFactory() for _ in range(3)]
    start = Change.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    PollingJob.objects.filter(pk=jobs[0].pk).update(status=JobStatus.PAUSED)
    PollingJob.objects.filter(pk=jobs[1].pk).update(status=JobStatus.FAILED, last_error="boom")
    PollingJob.objects.filter(pk=jobs[0].pk).update(status=JobStatus.ACTIVE)

    # A late client resuming from `start`: the changes since, each object once, its last state.
    stream = open_events(api, HTTP_LAST_EVENT_ID=str(start))
    caught_up = stream.until(lambda e: e.name == "job" and e.value["id"] == jobs[0].pk)
    assert [(e.value["id"], e.value["status"]) for e in caught_up] == [
        (jobs[1].pk, "failed"),
        (jobs[0].pk, "active"),
    ]
    last = caught_up[-1].id
    stream.close()

    PollingJob.objects.filter(pk=jobs[2].pk).update(status=JobStatus.PAUSED)
    again = open_events(api, HTTP_LAST_EVENT_ID=last)
    events = again.until(lambda e: e.name == "job")
    assert [(e.value["id"], e.value["status"]) for e in events] == [(jobs[2].pk, "paused")]
    assert again.quiet() == []  # nothing it had already seen
    again.close()

    # The same through the query parameter, for clients that cannot send headers.
    third = Stream(api.get(f"/api/events?last_event_id={last}"))
    assert third.until(lambda e: e.name == "job")[-1].value["id"] == jobs[2].pk
    third.close()


def test_a_resume_point_older_than_the_kept_changes_gets_reset(api):
    PollingJobFactory()
    newest = Change.objects.order_by("-pk").first().pk
    Change.objects.all().delete()  # pruned
    PollingJobFactory()
    stream = open_events(api, HTTP_LAST_EVENT_ID="1" if newest > 2 else "0")
    first = stream.until(lambda e: True)[0]
    assert first.name == "reset" and int(first.id) >= newest
    stream.close()


def test_the_run_stream_sends_the_output_so_far_then_as_written_then_the_end(api):
    run = ScriptRunFactory(state=RunState.RUNNING, output="one\n")
    stream = Stream(api.get(f"/api/runs/{run.pk}/stream", HTTP_ACCEPT="text/event-stream"))
    first = stream.until(lambda e: e.name == "state")
    assert [(e.name, e.value) for e in first] == [
        ("output", {"text": "one\n"}),
        ("state", {"id": run.pk, "state": "running"}),
    ]
    assert first[0].id == "4"

    ScriptRun.objects.filter(pk=run.pk).update(output="one\ntwo\n")
    assert stream.until(lambda e: e.name == "output")[-1].value == {"text": "two\n"}
    ScriptRun.objects.filter(pk=run.pk).update(output="one\ntwo\nthree\n", state=RunState.FAILED, exit_code=3)
    rest = stream.until(lambda e: e.name == "end")
    assert [(e.name, e.id) for e in rest] == [("output", "14"), ("end", None)]
    assert rest[0].value == {"text": "three\n"}
    assert (rest[-1].value["state"], rest[-1].value["exit_code"]) == ("failed", 3)
    assert "output" not in rest[-1].value
    stream.close()

    # A client that had the first 8 characters gets exactly the rest, then the end.
    resumed = Stream(api.get(f"/api/runs/{run.pk}/stream", HTTP_LAST_EVENT_ID="8"))
    events = resumed.until(lambda e: e.name == "end")
    assert [(e.name, e.data if e.name == "output" else None) for e in events] == [
        ("output", '{"text":"three\\n"}'),
        ("end", None),
    ]
    resumed.close()


def test_streams_refuse_what_the_api_refuses(api, anon, django_user_model):
    from rest_framework.test import APIClient

    assert anon.get("/api/events").status_code in (401, 403)
    run = ScriptRunFactory()
    assert anon.get(f"/api/runs/{run.pk}/stream").status_code in (401, 403)
    django_user_model.objects.create_user(username="plain", password="pw-123456789x")
    plain = APIClient()
    plain.login(username="plain", password="pw-123456789x")
    assert plain.get("/api/events").status_code == 403
    assert api.get("/api/runs/999999/stream").json() == {"detail": "Run 999999 not found."}
    bad = api.get("/api/events", HTTP_LAST_EVENT_ID="abc")
    assert bad.status_code == 400 and bad.json()["errors"] == {
        "Last-Event-ID": ["Last-Event-ID must be a whole number."]
    }
    assert api.get("/api/events?last_event_id=-1").status_code == 400


def test_beyond_the_stream_cap_the_answer_is_503_with_retry_after(api, settings, monkeypatch):
    import live.streams

    monkeypatch.setattr(live.streams, "_slots", None)
    settings.LIVE_MAX_STREAMS = 1
    first = open_events(api)
    refused = api.get("/api/events")
    assert refused.status_code == 503 and refused["Retry-After"] == "10"
    assert "Too many open streams" in refused.json()["detail"]
    first.close()  # its slot is free again
    second = open_events(api)
    second.close()
    monkeypatch.setattr(live.streams, "_slots", None)


def test_a_slot_is_given_back_even_when_the_stream_is_never_read(settings, monkeypatch):
    import live.streams

    monkeypatch.setattr(live.streams, "_slots", None)
    settings.LIVE_MAX_STREAMS = 1

    def nothing():
        yield from ()

    StreamSlot(nothing()).close()
    StreamSlot(nothing()).close()
    monkeypatch.setattr(live.streams, "_slots", None)


def test_a_trigger_key_streams_only_the_runs_it_started(sent, make_key, bearer):
    from scripts import services
    from scripts.tests.factories import ScriptFactory

    script = ScriptFactory(slug="hook", url_trigger=True)
    _mine, raw = make_key(name="mine", script=script)
    _other, other_raw = make_key(name="other")
    run_id = bearer(raw).post("/api/scripts/hook/trigger").json()["run_id"]
    ScriptRun.objects.filter(pk=run_id).update(state=RunState.SUCCEEDED, output="done\n", exit_code=0)
    stream = Stream(bearer(raw).get(f"/api/runs/{run_id}/stream"))
    events = stream.until(lambda e: e.name == "end")
    stream.close()
    assert [(e.name, e.value.get("text")) for e in events] == [("output", "done\n"), ("end", None)]
    assert bearer(other_raw).get(f"/api/runs/{run_id}/stream").status_code == 403
    manual = services.script_run_now(script=script)
    assert bearer(raw).get(f"/api/runs/{manual.pk}/stream").status_code == 403
    assert bearer(raw).get("/api/events").status_code == 403  # a trigger key sees runs, not the page's feed


def test_the_hub_pauses_without_streams_and_a_new_stream_starts_from_now(api, monkeypatch):
    import gc

    from live import hub as hub_module

    gc.collect()  # streams of earlier tests that were dropped unclosed end (the server closes each)
    monkeypatch.setattr(hub_module, "IDLE_SECONDS", 0.1)
    first = open_events(api)
    first.until(lambda e: e.name == "ready")
    first.close()
    h = hub_module.hub()
    deadline = time.monotonic() + 10
    while h.floor is not None and time.monotonic() < deadline:  # paused: keeps nothing
        time.sleep(0.05)
    assert h.floor is None
    job = PollingJobFactory()  # while nobody listens
    again = open_events(api)
    ready = again.until(lambda e: e.name == "ready")[-1]
    assert int(ready.id) >= Change.objects.order_by("-pk").first().pk  # not the old news
    PollingJob.objects.filter(pk=job.pk).update(status=JobStatus.PAUSED)
    assert again.until(lambda e: e.name == "job")[-1].value["status"] == "paused"
    again.close()
