"""/api/admin/keys: list, create (the key is in that one answer), show, revoke. Staff only, and
never with an API key: a key cannot make or revoke keys."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apikeys import selectors, services
from apikeys.authentication import NO_KEYS
from apikeys.models import ApiKey, ApiKeyScope
from teckochecker.api import ApiViewSet, bool_param
from teckochecker.errors import ValidationFailed


def _iso(value) -> str | None:
    return serializers.DateTimeField().to_representation(value) if value is not None else None


def apikey_representation(key: ApiKey) -> dict:
    """A key on the wire: never the key, never its hash; the prefix tells keys apart."""
    return {
        "id": key.pk,
        "name": key.name,
        "prefix": key.prefix,
        "scope": key.scope,
        "script": key.script_id,
        "script_slug": key.script.slug if key.script_id else None,
        "owner": key.owner.get_username(),
        "state": key.state(),
        "created_at": _iso(key.created_at),
        "expires_at": _iso(key.expires_at),
        "last_used_at": _iso(key.last_used_at),
        "revoked_at": _iso(key.revoked_at),
    }


class ApiKeySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The key's first characters, to tell keys apart.")
    scope = serializers.ChoiceField(choices=ApiKeyScope.choices)
    script = serializers.IntegerField(
        allow_null=True, help_text="scripts:trigger: the one script (null: all)."
    )
    script_slug = serializers.CharField(allow_null=True)
    owner = serializers.CharField(help_text="The staff user the key acts as.")
    state = serializers.ChoiceField(choices=["active", "expired", "revoked"])
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True, help_text="Updated at most once a minute.")
    revoked_at = serializers.DateTimeField(allow_null=True)


class ApiKeyCreatedSerializer(ApiKeySerializer):
    key = serializers.CharField(help_text="The key itself: shown in this answer only, never again.")


@extend_schema_serializer(many=False)
class ApiKeyListSerializer(serializers.Serializer):
    keys = ApiKeySerializer(many=True)
    total = serializers.IntegerField()


class ApiKeyCreateSerializer(serializers.Serializer):
    """Documentation only: services.apikey_create validates."""

    name = serializers.CharField()
    scope = serializers.ChoiceField(choices=ApiKeyScope.choices, required=False, default=ApiKeyScope.TRIGGER)
    script = serializers.CharField(
        required=False, allow_null=True, help_text="scripts:trigger: a script's id or safe name; null: all."
    )
    expires_at = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="A date, a date-time, or a span (30d, 12h, 8w); null: never.",
    )


CREATE_FIELDS = ("name", "scope", "script", "expires_at")


def _script(ref):
    if ref is None or ref == "":
        return None
    from scripts.services import ScriptNotFound, script_get_by_ref

    if isinstance(ref, bool) or not isinstance(ref, (int, str)) or "\x00" in str(ref):
        raise ValidationFailed.from_errors({"script": ["Script must be an id or a safe name."]})
    try:
        return script_get_by_ref(ref=ref)
    except ScriptNotFound as exc:  # a 400 on the field, like any other bad input
        raise ValidationFailed.from_errors({"script": [exc.detail]}) from None


class ApiKeyViewSet(ApiViewSet):
    api_key_scopes = NO_KEYS

    @extend_schema(
        operation_id="api_admin_keys_list",
        summary="List API keys (never the keys themselves)",
        parameters=[OpenApiParameter("active", bool, description="Leave out revoked keys.")],
        responses={200: ApiKeyListSerializer},
    )
    def list(self, request):
        keys = selectors.apikey_list(include_revoked=not bool_param(request, "active"))
        return Response({"keys": [apikey_representation(k) for k in keys], "total": len(keys)})

    @extend_schema(
        summary="Make an API key; the answer holds the key, shown this once",
        request=ApiKeyCreateSerializer,
        responses={201: ApiKeyCreatedSerializer},
        examples=[
            OpenApiExample(
                "Trigger one script",
                request_only=True,
                value={
                    "name": "deploy hook",
                    "scope": "scripts:trigger",
                    "script": "nightly-export",
                    "expires_at": "90d",
                },
            )
        ],
    )
    def create(self, request):
        if not isinstance(request.data, dict):
            raise ValidationFailed.from_errors({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(request.data) - set(CREATE_FIELDS))
        if unknown:
            raise ValidationFailed.from_errors({field: ["Unknown field."] for field in unknown})
        if "name" not in request.data:
            raise ValidationFailed.from_errors({"name": ["This field is required."]})
        key, raw = services.apikey_create(
            name=request.data["name"],
            owner=request.user,
            scope=request.data.get("scope", ApiKeyScope.TRIGGER),
            script=_script(request.data.get("script")),
            expires_at=request.data.get("expires_at"),
        )
        return Response({**apikey_representation(key), "key": raw}, status=status.HTTP_201_CREATED)

    @extend_schema(summary="One API key (never the key)", responses={200: ApiKeySerializer})
    def retrieve(self, request, pk: int):
        return Response(apikey_representation(services.apikey_get(key_id=int(pk))))

    @extend_schema(
        summary="Revoke a key at once (the row stays)", request=None, responses={200: ApiKeySerializer}
    )
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk: int):
        key = services.apikey_revoke(key=services.apikey_get(key_id=int(pk)))
        return Response(apikey_representation(key))
