"""GET /api/export and POST /api/import: the bundle over HTTP (staff only, like every endpoint).
Thin: bundles.services does the work."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from bundles.services import bundle_dumps, bundle_export, bundle_import
from teckochecker.api import bool_param

FILENAME = "teckochecker-bundle.json"


def export_response(*, download: bool) -> HttpResponse:
    """The export as `manage.py export` writes it (sorted keys), so the two can be diffed; as a
    file download or not. Raises BundleExportConflict (see bundle_export)."""
    response = HttpResponse(bundle_dumps(bundle_export()), content_type="application/json; charset=utf-8")
    if download:
        response["Content-Disposition"] = f'attachment; filename="{FILENAME}"'
    return response


class ImportItemSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["script", "job"])
    key = serializers.CharField(help_text="The script's safe name or the job's name.")
    action = serializers.ChoiceField(choices=["create", "update", "unchanged", "skip"])
    fields = serializers.ListField(child=serializers.CharField(), help_text="What an update changes.")
    note = serializers.CharField(allow_blank=True, help_text="Why an item is skipped.")


class ImportReportSerializer(serializers.Serializer):
    dry_run = serializers.BooleanField()
    changed = serializers.BooleanField(help_text="False: the bundle matched what is here.")
    summary = serializers.CharField()
    counts = serializers.DictField(child=serializers.IntegerField())
    items = ImportItemSerializer(many=True)


class ExportView(APIView):
    @extend_schema(
        summary="Every script and active or paused job as one bundle (secrets by name only)",
        parameters=[
            OpenApiParameter("download", bool, description=f"Answer as a file download ({FILENAME}).")
        ],
        responses={200: OpenApiTypes.OBJECT},
    )
    def get(self, request):
        return export_response(download=bool_param(request, "download"))


class ImportView(APIView):
    @extend_schema(
        summary="Import a bundle completely or not at all (400 names every bad item and field)",
        parameters=[
            OpenApiParameter("dry_run", bool, description="Report what would change; write nothing.")
        ],
        request=OpenApiTypes.OBJECT,
        responses={200: ImportReportSerializer},
    )
    def post(self, request):
        report = bundle_import(
            bundle=request.data,
            dry_run=bool_param(request, "dry_run"),
            author=f"{request.user.get_username()} (import)",
        )
        return Response(report.as_dict())
