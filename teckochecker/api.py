"""Project-wide API plumbing: one exception handler, one router, slash-tolerant routes, schema hooks."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from django.urls import path
from rest_framework import exceptions, status, viewsets
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.views import exception_handler as drf_exception_handler

from teckochecker.errors import DomainError, ValidationFailed


def _flatten(detail) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for field, messages in detail.items():
            if isinstance(messages, dict):
                for sub, sub_messages in _flatten(messages).items():
                    out[f"{field}.{sub}"] = sub_messages
            elif isinstance(messages, list):
                out[field] = [
                    str(m) if not isinstance(m, (dict, list)) else str(_flatten(m)) for m in messages
                ]
            else:
                out[field] = [str(messages)]
        return out
    if isinstance(detail, list):
        return {"non_field_errors": [str(m) for m in detail]}
    return {"non_field_errors": [str(detail)]}


def exception_handler(exc, context):
    """Every error body has a readable `detail`; 400s also carry `errors: {field: [...]}`."""
    if isinstance(exc, DomainError):
        body = {"detail": exc.detail, **exc.extra}
        if exc.errors or exc.status_code == 400:
            body["errors"] = exc.errors or {"non_field_errors": [exc.detail]}
        return Response(body, status=exc.status_code)
    if isinstance(exc, Http404):
        return Response({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return Response(
            {"detail": f"The request body is larger than {limit} bytes (MAX_REQUEST_BYTES)."},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first_field, messages = next(iter(errors.items()), ("non_field_errors", ["Invalid input."]))
        detail = messages[0] if first_field == "non_field_errors" else f"{first_field}: {messages[0]}"
        response.data = {"detail": detail, "errors": errors}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"detail": str(response.data["detail"])}
    else:
        response.data = {"detail": str(response.data)}
    return response


# --- query parameters: one set of parsers for every app's API ----------------------------


def int_param(request, name: str, default: int | None, low: int, high: int) -> int | None:
    """A whole-number query parameter within [low, high]; `default` when absent or empty."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed.from_errors({name: [f"{name} must be a whole number."]}) from None
    if not low <= value <= high:
        raise ValidationFailed.from_errors({name: [f"{name} must be between {low} and {high}."]})
    return value


def choice_param(request, name: str, choices: list[str]) -> str | None:
    """A query parameter that must be one of `choices`; None when absent or empty."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if raw not in choices:
        raise ValidationFailed.from_errors({name: [f"{name} must be one of: {', '.join(choices)}."]})
    return raw


def bool_param(request, name: str) -> bool:
    """true/false/1/0 (false when absent)."""
    raw = (request.query_params.get(name) or "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise ValidationFailed.from_errors({name: [f"{name} must be true or false."]})
    return raw in ("true", "1")


def text_param(request, name: str, *, max_length: int = 255, empty_is_none: bool = True) -> str | None:
    """A free-text query parameter (a search, a folder), cut to `max_length`. None when absent
    (and when empty, unless `empty_is_none` is off). A NUL character is refused: no stored text
    can hold one, and PostgreSQL refuses it in a query."""
    raw = request.query_params.get(name)
    if raw is None or (raw == "" and empty_is_none):
        return None
    if "\x00" in raw:
        raise ValidationFailed.from_errors({name: [f"{name} must not contain NUL characters."]})
    return raw[:max_length]


def api_path(route: str, view, name: str):
    """The route without a trailing slash, plus the slash form, neither redirecting."""
    return [path(route, view, name=name), path(route + "/", view, name=f"{name}-slash")]


# Base of every resource's viewset: ids in URLs are whole numbers (`<int:...>`), so a malformed
# id is simply an unknown URL (404), as everywhere else in the URL conf. Viewsets say what they
# are in comments: drf-spectacular would copy a class docstring into every operation.
class ApiViewSet(viewsets.ViewSet):
    lookup_value_converter = "int"


class ApiRouter(DefaultRouter):
    """The project's one API router: each app lists its viewsets, `teckochecker/urls.py`
    registers them all here.

    Every route lives under `/api` and answers with and without a trailing slash (neither
    redirects, see `api_path`); `/api` itself is DRF's browsable root listing every resource.
    An app may also build its own `ApiRouter(root=False)` and add its `urls` to its URL conf.
    """

    include_format_suffixes = False

    def __init__(self, *, base: str = "api", root: bool = True):
        super().__init__(trailing_slash=False, use_regex_path=False)
        self.base = base
        self.include_root_view = root

    def get_urls(self):
        urls = []
        for pattern in super().get_urls():
            route = "/".join(part for part in (self.base, str(pattern.pattern)) if part)
            urls += api_path(route, pattern.callback, pattern.name)
        return urls


def drop_slash_duplicates(endpoints):
    """drf-spectacular hook: document each endpoint once, in its slash-less form."""
    return [e for e in endpoints if not e[0].endswith("/")]


ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {"type": "string", "description": "A readable message."},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "Validation errors per field (HTTP 400).",
        },
        "line": {"type": "integer", "description": "A script's syntax error: the line it is on."},
    },
    "required": ["detail"],
}
_ERROR_TEXT = {
    "400": "Invalid input (`errors` names each field).",
    "401": "No credentials.",
    "403": "Not a staff user, or a session write without its CSRF token.",
    "404": "No such object.",
    "409": "The object's state does not allow this.",
    "413": "The request body is larger than MAX_REQUEST_BYTES.",
    "415": "The body is not JSON.",
    "429": "Rate limited; see `Retry-After`.",
}


def document_errors(result, generator, request, public):
    """drf-spectacular hook: the error answers every operation can give, all shaped as `Error`.

    Without them the schema promises only success codes, and a client (or schemathesis) cannot
    tell a documented 400/404 from a surprise.
    """
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for route, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            codes = ["400", "429"]
            if operation.get("security") != [{}]:  # [{}]: public (AllowAny, no authentication)
                codes += ["401", "403"]
            if "{" in route or method in ("post", "put", "patch"):  # the object, or one it names
                codes.append("404")
            if method in ("post", "put", "patch", "delete"):
                codes.append("409")
            if method in ("post", "put", "patch"):
                codes += ["413", "415"]
            for code in codes:
                operation["responses"].setdefault(code, {"description": _ERROR_TEXT[code], **ref})
    return result


def not_found(request, exception=None):
    """handler404: a JSON `detail` for API paths (API.md: every error body has one)."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)
