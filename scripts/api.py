"""REST endpoints for scripts, runs and interpreters (SCRIPTS_CONTRACT.md). Views stay thin:
parse, call one service, shape the answer with scripts.serializers."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status as http
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.authentication import TRIGGER_AND_FULL, require_own_run
from live.api import EVENT_DATA, LAST_EVENT_ID, StreamNegotiation, last_event_id, sse_response
from live.streams import run_events
from scripts import selectors, services
from scripts.models import RunState, RunTrigger
from scripts.serializers import (
    EnvironmentCheckSerializer,
    EnvironmentSerializer,
    PythonListSerializer,
    RunDetailSerializer,
    RunListSerializer,
    RunSerializer,
    SchedulePreviewRequestSerializer,
    SchedulePreviewSerializer,
    ScriptListSerializer,
    ScriptPatchSerializer,
    ScriptSerializer,
    ScriptWriteSerializer,
    TemplateListSerializer,
    VersionDetailSerializer,
    VersionDiffSerializer,
    VersionListSerializer,
    run_representation,
    script_representation,
    template_representation,
    version_representation,
)
from scripts.services.scripts import UPDATABLE_FIELDS
from secrets_vault.api import MessageSerializer
from teckochecker.api import ApiViewSet, choice_param, int_param, text_param
from teckochecker.errors import ValidationFailed

SCRIPT_EXAMPLE = OpenApiExample(
    "Every five minutes",
    request_only=True,
    value={
        "name": "Hello World",
        "code": "import requests\nprint(requests.get('https://example.com').status_code)\n",
        "requirements": "requests==2.32.3\n",
        "network": True,
        "schedule": {"type": "interval", "every": 5, "unit": "minutes"},
        "env": [{"name": "GREETING", "value": "hi"}, {"name": "API_TOKEN", "secret": "my-api-token"}],
    },
)


def _body(request, allowed: tuple[str, ...] | None = None) -> dict:
    if not isinstance(request.data, dict):
        raise ValidationFailed.from_errors({"non_field_errors": ["Expected a JSON object."]})
    body = dict(request.data)
    unknown = sorted(set(body) - set(allowed)) if allowed is not None else []
    if unknown:
        raise ValidationFailed.from_errors({field: ["Unknown field."] for field in unknown})
    return body


def _script(script_id: int) -> dict:
    services.script_get(script_id=script_id)  # 404 with the usual message
    return script_representation(selectors.script_detail(script_id=script_id))


def _author(request) -> str:
    return request.user.get_username()


def _runs_page(request, *, script_id: int | None) -> Response:
    runs, total = selectors.run_list(
        script_id=script_id,
        state=choice_param(request, "state", RunState.values),
        trigger=choice_param(request, "trigger", RunTrigger.values),
        search=text_param(request, "search"),
        limit=int_param(request, "limit", 50, 1, 500),
        offset=int_param(request, "offset", 0, 0, 10**9),
    )
    return Response({"runs": [run_representation(r) for r in runs], "total": total})


RUN_FILTERS = [
    OpenApiParameter("state", str, enum=RunState.values),
    OpenApiParameter("trigger", str, enum=RunTrigger.values),
    OpenApiParameter("search", str, description="Text in the run's output or message."),
    OpenApiParameter("limit", int, description="Page size (1-500, default 50)."),
    OpenApiParameter("offset", int),
]


class ScriptViewSet(ApiViewSet):
    @extend_schema(
        operation_id="api_scripts_list",
        summary="List scripts by folder and name",
        parameters=[
            OpenApiParameter("folder", str, description="Only scripts in this folder ('' for none)."),
            OpenApiParameter("search", str, description="Substring of the name, safe name or folder."),
            OpenApiParameter("limit", int, description="Page size (1-1000); all when absent."),
            OpenApiParameter("offset", int),
        ],
        responses={200: ScriptListSerializer},
    )
    def list(self, request):
        scripts, total = selectors.script_list(
            folder=text_param(request, "folder", empty_is_none=False),
            search=text_param(request, "search"),
            limit=int_param(request, "limit", None, 1, 1000),
            offset=int_param(request, "offset", 0, 0, 10**9),
        )
        return Response({"scripts": [script_representation(s) for s in scripts], "total": total})

    @extend_schema(
        summary="Create a script; its environment is built in the background",
        request=ScriptWriteSerializer,
        responses={201: ScriptSerializer},
        examples=[SCRIPT_EXAMPLE],
    )
    def create(self, request):
        body = _body(request, (*UPDATABLE_FIELDS, "template"))
        if "name" not in body:
            raise ValidationFailed.from_errors({"name": ["This field is required."]})
        if "template" in body:
            script = services.script_create_from_template(**body, author=_author(request))
        else:
            script = services.script_create(**body, author=_author(request))
        return Response(_script(script.pk), status=http.HTTP_201_CREATED)

    @extend_schema(summary="One script", responses={200: ScriptSerializer})
    def retrieve(self, request, pk: int):
        return Response(_script(int(pk)))

    @extend_schema(
        summary="Change a script (partial)", request=ScriptPatchSerializer, responses={200: ScriptSerializer}
    )
    def update(self, request, pk: int):
        script = services.script_get(script_id=int(pk))
        body = _body(request)
        base_version = body.pop("base_version", None)
        services.script_update(script=script, author=_author(request), base_version=base_version, **body)
        return Response(_script(script.pk))

    @extend_schema(
        summary="Change a script (partial)", request=ScriptPatchSerializer, responses={200: ScriptSerializer}
    )
    def partial_update(self, request, pk: int):
        return self.update(request, pk)

    @extend_schema(
        summary="Delete a script with its runs, schedule and environment (a running run is ended)",
        responses={200: MessageSerializer},
    )
    def destroy(self, request, pk: int):
        script = services.script_get(script_id=int(pk))
        services.script_delete(script=script)
        return Response({"message": f"Script '{script.name}' deleted successfully", "success": True})

    @extend_schema(summary="Run the script now", request=None, responses={202: RunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request, pk: int):
        run = services.script_run_now(script=services.script_get(script_id=int(pk)))
        return Response(run_representation(services.run_get(run_id=run.pk)), status=http.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Cancel every queued or running run of the script",
        request=None,
        responses={200: MessageSerializer},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk: int):
        count = services.script_cancel_runs(script=services.script_get(script_id=int(pk)))
        return Response({"message": f"{count} run(s) cancelled", "success": True})

    @extend_schema(
        summary="The script's runs, newest first", parameters=RUN_FILTERS, responses={200: RunListSerializer}
    )
    @action(detail=True, methods=["get"])
    def runs(self, request, pk: int):
        script = services.script_get(script_id=int(pk))
        return _runs_page(request, script_id=script.pk)

    @extend_schema(
        summary="The script's environment: state, error, Python, disk use",
        responses={200: EnvironmentSerializer},
    )
    @action(detail=True, methods=["get"])
    def environment(self, request, pk: int):
        info = services.environment_info(script=services.script_get(script_id=int(pk)))
        return Response(EnvironmentSerializer(info).data)

    @extend_schema(
        summary="Check the environment: the interpreter starts, each requirement is installed",
        request=None,
        responses={200: EnvironmentCheckSerializer},
    )
    @action(detail=True, methods=["post"], url_path="environment/check")
    def environment_check(self, request, pk: int):
        return Response(services.environment_check(script=services.script_get(script_id=int(pk))))

    @extend_schema(
        summary="Build the environment again", request=None, responses={202: EnvironmentSerializer}
    )
    @action(detail=True, methods=["post"], url_path="environment/rebuild")
    def environment_rebuild(self, request, pk: int):
        script = services.environment_rebuild(script=services.script_get(script_id=int(pk)))
        return Response(
            EnvironmentSerializer(services.environment_info(script=script)).data,
            status=http.HTTP_202_ACCEPTED,
        )

    @extend_schema(
        operation_id="api_scripts_versions_list",
        summary="The versions of the script's code and requirements, newest first",
        parameters=[
            OpenApiParameter("limit", int, description="Page size (1-500, default 50)."),
            OpenApiParameter("offset", int),
        ],
        responses={200: VersionListSerializer},
    )
    @action(detail=True, methods=["get"])
    def versions(self, request, pk: int):
        script = services.script_get(script_id=int(pk))
        versions, total = services.version_list(
            script=script,
            limit=int_param(request, "limit", 50, 1, 500),
            offset=int_param(request, "offset", 0, 0, 10**9),
        )
        shown = [version_representation(v, current=script.version) for v in versions]
        return Response({"versions": shown, "total": total, "current": script.version})

    @extend_schema(
        operation_id="api_scripts_version_retrieve",
        summary="One version with its code and requirements",
        responses={200: VersionDetailSerializer},
    )
    @action(detail=True, methods=["get"], url_path="versions/<int:number>")
    def version(self, request, pk: int, number: int):
        script = services.script_get(script_id=int(pk))
        version = services.version_get(script=script, number=number)
        return Response(version_representation(version, current=script.version, with_code=True))

    @extend_schema(
        summary="What changed from one version to another (unified diffs)",
        responses={200: VersionDiffSerializer},
    )
    @action(detail=True, methods=["get"], url_path="versions/<int:number>/diff/<int:other>")
    def version_diff(self, request, pk: int, number: int, other: int):
        script = services.script_get(script_id=int(pk))
        return Response(services.version_diff(script=script, old=number, new=other))

    @extend_schema(
        summary="Make a version's code and requirements current again (a new version)",
        request=None,
        responses={200: ScriptSerializer},
    )
    @action(detail=True, methods=["post"], url_path="versions/<int:number>/restore")
    def version_restore(self, request, pk: int, number: int):
        script = services.script_get(script_id=int(pk))
        services.version_restore(script=script, number=number, author=_author(request))
        return Response(_script(script.pk))

    @extend_schema(
        summary="The next five run times of a schedule (for the schedule builder)",
        request=SchedulePreviewRequestSerializer,
        responses={200: SchedulePreviewSerializer},
    )
    @action(detail=False, methods=["post"], url_path="schedule-preview")
    def schedule_preview(self, request):
        body = _body(request)
        times = services.next_runs(schedule=body.get("schedule"))
        return Response(SchedulePreviewSerializer({"next_runs": times}).data)


class RunViewSet(StreamNegotiation, ApiViewSet):
    # A scripts:trigger API key may follow the runs it started (the URL its trigger answers).
    api_key_scopes_by_action = {
        "retrieve": TRIGGER_AND_FULL,
        "output": TRIGGER_AND_FULL,
        "stream": TRIGGER_AND_FULL,
    }

    @extend_schema(
        operation_id="api_runs_list",
        summary="Runs of every script, newest first; search looks in the output",
        parameters=[OpenApiParameter("script", int, description="Only this script's runs."), *RUN_FILTERS],
        responses={200: RunListSerializer},
    )
    def list(self, request):
        script_id = int_param(request, "script", None, 1, 2**63 - 1)
        return _runs_page(request, script_id=script_id)

    @extend_schema(summary="One run with its output", responses={200: RunDetailSerializer})
    def retrieve(self, request, pk: int):
        run = services.run_get(run_id=int(pk))
        require_own_run(request, run)
        return Response(run_representation(run, with_output=True))

    @extend_schema(
        summary="The run's output as plain text",
        responses={(200, "text/plain"): OpenApiTypes.STR},
    )
    @action(detail=True, methods=["get"])
    def output(self, request, pk: int):
        run = services.run_get(run_id=int(pk))
        require_own_run(request, run)
        return HttpResponse(run.output, content_type="text/plain; charset=utf-8")

    @extend_schema(
        summary="Server-sent events: the run's output as it is written, then its final state",
        description=(
            'A text/event-stream. `output` events carry `{"text"}`; their id is the length of the '
            "output after them, so Last-Event-ID resumes exactly after what arrived. `state` says "
            "queued or running; `end` is the finished run (as GET /api/runs/{id} without output), "
            "after which the stream ends."
        ),
        parameters=[LAST_EVENT_ID],
        responses={(200, "text/event-stream"): EVENT_DATA},
    )
    @action(detail=True, methods=["get"])
    def stream(self, request, pk: int):
        run = services.run_get(run_id=int(pk))
        require_own_run(request, run)
        after = last_event_id(request) or 0
        return sse_response(
            run_events(run_id=run.pk, after=after, max_seconds=settings.LIVE_STREAM_MAX_SECONDS)
        )

    @extend_schema(summary="Cancel a queued or running run", request=None, responses={200: RunSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk: int):
        run = services.run_cancel(run=services.run_get(run_id=int(pk)))
        return Response(run_representation(run))


class PythonListView(APIView):
    @extend_schema(summary="The Python interpreters scripts can use", responses={200: PythonListSerializer})
    def get(self, request):
        from scripts import environments

        pythons = [
            {"version": p.version, "path": p.path, "default": p.default}
            for p in environments.pythons_available()
        ]
        return Response({"pythons": pythons})


class TemplateListView(APIView):
    @extend_schema(
        operation_id="api_script_templates_list",
        summary="Built-in templates to start a script from",
        responses={200: TemplateListSerializer},
    )
    def get(self, request):
        return Response({"templates": [template_representation(t) for t in services.template_list()]})
