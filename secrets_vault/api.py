"""REST endpoints for secrets: /api/admin/secrets (contract: API.md, "Secrets")."""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiExample,
    extend_schema,
    extend_schema_field,
    extend_schema_serializer,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response

from secrets_vault import selectors, services
from secrets_vault.models import SecretType
from teckochecker.api import ApiViewSet


class SecretCreateSerializer(serializers.Serializer):
    # Lenient on purpose: services.secret_create is the one place that validates.
    name = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=None)
    type = serializers.CharField(help_text=f"One of: {', '.join(SecretType.values)}.")
    value = serializers.CharField(
        write_only=True, allow_blank=True, trim_whitespace=False, style={"input_type": "password"}
    )


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}]})
class SecretUserField(serializers.Field):
    """A user as `secrets_vault.usage` lists it: a job id (integer) or a script's safe name."""

    def to_representation(self, value):
        return value


class SecretSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    type = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    used_by = serializers.ListField(
        child=SecretUserField(),
        help_text="Who uses this secret: ids of active or paused jobs, safe names of scripts.",
    )


@extend_schema_serializer(many=False)  # one object wrapping a list, though a list route answers it
class SecretListSerializer(serializers.Serializer):
    secrets = SecretSerializer(many=True)
    total = serializers.IntegerField()


MessageSerializer = inline_serializer(
    "Message", {"message": serializers.CharField(), "success": serializers.BooleanField()}
)


# /api/admin/secrets: values go in once and never come out.
class SecretViewSet(ApiViewSet):
    lookup_url_kwarg = "secret_id"

    @extend_schema(
        operation_id="api_admin_secrets_list",
        responses={200: SecretListSerializer},
        summary="List secrets (values never returned)",
    )
    def list(self, request):
        secrets = selectors.secret_list()
        return Response({"secrets": SecretSerializer(secrets, many=True).data, "total": len(secrets)})

    @extend_schema(
        request=SecretCreateSerializer,
        responses={201: SecretSerializer},
        summary="Store a new encrypted secret",
        examples=[
            OpenApiExample(
                "OpenAI key",
                value={"name": "openai-prod", "type": "openai", "value": "sk-..."},
                request_only=True,
            )
        ],
    )
    def create(self, request):
        data = SecretCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        secret = services.secret_create(**data.validated_data)
        return Response(
            SecretSerializer(selectors.secret_detail(secret)).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(responses={200: SecretSerializer}, summary="One secret (never its value)")
    def retrieve(self, request, secret_id: int):
        secret = services.secret_get(secret_id=secret_id)
        return Response(SecretSerializer(selectors.secret_detail(secret)).data)

    @extend_schema(responses={200: MessageSerializer}, summary="Delete a secret no active or paused job uses")
    def destroy(self, request, secret_id: int):
        secret = services.secret_get(secret_id=secret_id)
        services.secret_delete(secret=secret)
        return Response({"message": f"Secret '{secret.name}' deleted successfully", "success": True})
