"""The HTTP side of the streams: GET /api/events here, GET /api/runs/{id}/stream in scripts.api;
both answer through `sse_response`. Authentication, permissions and throttling are the API's
(staff only; session or token) because both are DRF views."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from live.streams import Event, StreamsBusy, StreamSlot, change_events
from teckochecker.api import int_param
from teckochecker.errors import ValidationFailed

# How long a client refused for lack of stream slots should wait before trying again.
BUSY_RETRY_SECONDS = 10


class StreamNegotiation:
    """A stream's client asks for text/event-stream (EventSource does); whatever is not the
    stream itself (an error) goes out as JSON instead of a 406. Views list their stream
    actions; an APIView that only streams sets `stream_actions = None` (all of it)."""

    stream_actions: tuple[str, ...] | None = ("stream",)

    def perform_content_negotiation(self, request, force=False):
        if self.stream_actions is None or getattr(self, "action", None) in self.stream_actions:
            renderer = JSONRenderer()
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)


# Each event's `data` is one JSON object (the schema describes that, event by event).
EVENT_DATA = OpenApiResponse(response=OpenApiTypes.OBJECT, description="A text/event-stream of JSON objects.")

LAST_EVENT_ID = OpenApiParameter(
    "Last-Event-ID",
    int,
    location=OpenApiParameter.HEADER,
    description="Resume after this event id (browsers send it when they reconnect). "
    "The `last_event_id` query parameter does the same for clients that cannot set headers.",
)


def last_event_id(request) -> int | None:
    """The event id to resume after: the Last-Event-ID header, else `last_event_id`."""
    raw = request.headers.get("Last-Event-ID")
    if raw is None or raw.strip() == "":
        return int_param(request, "last_event_id", None, 0, 2**63 - 1)
    raw = raw.strip()
    if not raw.isdigit() or int(raw) > 2**63 - 1:
        raise ValidationFailed.from_errors({"Last-Event-ID": ["Last-Event-ID must be a whole number."]})
    return int(raw)


def sse_response(events) -> StreamingHttpResponse | Response:
    """The events as a text/event-stream answer, or 503 with Retry-After when every stream slot
    is taken (LIVE_MAX_STREAMS)."""
    try:
        slot = StreamSlot(events)
    except StreamsBusy:
        events.close()
        return Response(
            {"detail": "Too many open streams; try again shortly, or poll the API."},
            status=503,
            headers={"Retry-After": str(BUSY_RETRY_SECONDS)},
        )
    response = StreamingHttpResponse(slot, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy in front must not hold events back
    return response


class EventStreamView(StreamNegotiation, APIView):
    stream_actions = None

    @extend_schema(
        operation_id="api_events_stream",
        summary="Server-sent events: every change the page shows (jobs, runs, scripts, log entries)",
        description=(
            "A text/event-stream. Events: `job` (the job as GET /api/jobs/{id}, or "
            '`{"id", "deleted": true}`), `run` (as GET /api/runs/{id} without output), `script` '
            "(name, environment state), `log` (a new entry as in GET /api/logs), `ready` (first, "
            "when not resuming) and `reset` (the resume point is no longer kept: reload). Every "
            "event has an id; send the last one as Last-Event-ID to resume without gaps or repeats."
        ),
        parameters=[LAST_EVENT_ID],
        responses={(200, "text/event-stream"): EVENT_DATA},
    )
    def get(self, request):
        from django.conf import settings

        after = last_event_id(request)
        return sse_response(change_events(after=after, max_seconds=settings.LIVE_STREAM_MAX_SECONDS))


__all__ = ["EVENT_DATA", "Event", "EventStreamView", "StreamNegotiation", "last_event_id", "sse_response"]
