"""`Authorization: Bearer <API key>` for DRF, registered once in settings.REST_FRAMEWORK.

This class is also the one place a key's scope is enforced, so a view that forgets about keys
is closed to narrow keys by default: a view accepts the scopes it declares in `api_key_scopes`
(a viewset may differ per action in `api_key_scopes_by_action`), and only full keys otherwise.
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from apikeys import services
from apikeys.exceptions import ApiKeyOutOfScope, ApiKeyRejected
from apikeys.models import ApiKey, ApiKeyScope

FULL_ONLY = frozenset({ApiKeyScope.FULL})
TRIGGER_AND_FULL = frozenset({ApiKeyScope.TRIGGER, ApiKeyScope.FULL})
NO_KEYS = frozenset()
# Query parameters a client might put a key in. URLs end up in proxy and server logs, so a key
# there is refused outright instead of silently ignored.
KEY_QUERY_PARAMETERS = ("key", "api_key", "apikey", "api-key", "access_token")


class KeyInUrl(exceptions.ParseError):
    default_detail = (
        "Send the API key in the Authorization header (Authorization: Bearer <key>), never in the URL: "
        "URLs are written to logs. Revoke a key that was sent in a URL."
    )


def accepted_scopes(view) -> frozenset:
    by_action = getattr(view, "api_key_scopes_by_action", {})
    action = getattr(view, "action", None)
    if action in by_action:
        return by_action[action]
    return getattr(view, "api_key_scopes", FULL_ONLY)


def scope_refusal(key: ApiKey, view) -> str | None:
    if key.scope in accepted_scopes(view):
        return None
    if not accepted_scopes(view):
        return "API keys cannot be used here (managing API keys needs a staff session or token)."
    return (
        f"API {key.label} has the scope {key.scope}: it may only trigger scripts "
        "(POST /api/scripts/{slug}/trigger) and follow the runs it started."
    )


class ApiKeyAuthentication(BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        if any(name in request.query_params for name in KEY_QUERY_PARAMETERS):
            raise KeyInUrl()
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid Authorization header: send 'Bearer <API key>'.")
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid API key.") from None
        try:
            key = services.apikey_authenticate(raw=raw)
        except ApiKeyRejected as exc:
            raise exceptions.AuthenticationFailed(exc.detail) from None
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if (refusal := scope_refusal(key, view)) is not None:
            raise exceptions.PermissionDenied(refusal)
        return key.owner, key

    def authenticate_header(self, request) -> str:
        return self.keyword


def require_own_run(request, run) -> None:
    """For run views a scripts:trigger key may use: such a key sees only the runs it started
    (staff sessions, tokens and full keys see every run)."""
    key = request.auth
    if isinstance(key, ApiKey) and key.scope == ApiKeyScope.TRIGGER and run.triggered_by != key.label:
        raise ApiKeyOutOfScope(f"API {key.label} may only follow the runs it started.")
