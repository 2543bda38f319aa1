"""POST (and, where a script allows it, GET) /api/scripts/{slug}/trigger: an API key runs a
script. Only API keys authenticate here (`Authorization: Bearer <key>`): the run records which
key asked. The logic is `scripts.services.triggers`."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers
from rest_framework import status as http
from rest_framework.permissions import IsAdminUser
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.authentication import TRIGGER_AND_FULL, ApiKeyAuthentication
from scripts.services.triggers import script_trigger

TriggeredSerializer = inline_serializer(
    "Triggered",
    {
        "run_id": serializers.IntegerField(),
        "script": serializers.CharField(help_text="The script's safe name."),
        "state": serializers.CharField(help_text="The run's state now (queued for a new run)."),
        "url": serializers.URLField(help_text="Where to follow the run: GET it with the same key."),
        "replayed": serializers.BooleanField(
            help_text="True when an earlier call with this Idempotency-Key made the run."
        ),
    },
)
IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description="A retry with the same value (same key and script) returns the first call's run.",
)


class ScriptTriggerView(APIView):
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsAdminUser]  # a key acts as its owner, an active staff user
    api_key_scopes = TRIGGER_AND_FULL

    def permission_denied(self, request, message=None, code=None):
        if not request.successful_authenticator:  # e.g. a staff `Token`: say what is needed
            raise exceptions.NotAuthenticated(
                "This URL takes an API key: Authorization: Bearer <key> (make one with "
                "`manage.py apikey create`, the admin or the page's API Keys tab)."
            )
        super().permission_denied(request, message, code)

    @extend_schema(
        operation_id="api_scripts_trigger",
        summary="Run a script with an API key (URL trigger); the JSON body becomes TECKOCHECKER_PARAMS",
        parameters=[IDEMPOTENCY_HEADER],
        request={"application/json": {"type": "object", "additionalProperties": True}},
        responses={202: TriggeredSerializer},
        examples=[
            OpenApiExample("Parameters", request_only=True, value={"date": "2026-01-31", "full": True})
        ],
    )
    def post(self, request, slug: str):
        params = request.data if request.body.strip() else None
        return self._trigger(request, slug, params, "POST")

    @extend_schema(
        operation_id="api_scripts_trigger_get",
        summary="Run a script with an API key by GET (only where the script allows it); the query "
        "parameters become TECKOCHECKER_PARAMS",
        parameters=[IDEMPOTENCY_HEADER],
        responses={202: TriggeredSerializer},
    )
    def get(self, request, slug: str):
        return self._trigger(request, slug, dict(request.query_params.items()) or None, "GET")

    def _trigger(self, request, slug: str, params, method: str) -> Response:
        triggered = script_trigger(
            slug=slug,
            api_key=request.auth,
            params=params,
            idempotency_key=request.headers.get("Idempotency-Key"),
            method=method,
        )
        run = triggered.run
        url = request.build_absolute_uri(f"/api/runs/{run.pk}")
        return Response(
            {
                "run_id": run.pk,
                "script": slug,
                "state": run.state,
                "url": url,
                "replayed": triggered.replayed,
            },
            status=http.HTTP_202_ACCEPTED,
            headers={"Location": url},
        )
