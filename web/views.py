"""The browser page at /web: one template, plus a tiny session login for staff users.

Everything else the page does goes through the public /api/... endpoints.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import authenticate, login, logout
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

# Failed sign-ins per client address before /web/login answers 429 for a while.
LOGIN_FAILURE_LIMIT = 10
LOGIN_LOCKOUT_SECONDS = 300


@require_GET
@ensure_csrf_cookie
def index(request: HttpRequest) -> HttpResponse:
    """The single page. It loads for anyone; the script shows a login form when the API says 401/403."""
    return render(request, "web/index.html", {"version": settings.VERSION})


def _credentials(request: HttpRequest) -> tuple[str, str]:
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
    else:
        body = request.POST
    username, password = body.get("username", ""), body.get("password", "")
    return (username if isinstance(username, str) else "", password if isinstance(password, str) else "")


def _session_body(request: HttpRequest) -> dict:
    user = request.user
    signed_in = bool(user.is_authenticated and user.is_staff)
    return {"authenticated": signed_in, "username": user.get_username() if signed_in else None}


@require_POST
@never_cache
def login_view(request: HttpRequest) -> JsonResponse:
    """Sign a staff user in with the Django session. CSRF-protected like every POST."""
    throttle_key = f"web-login-failures:{request.META.get('REMOTE_ADDR', '')}"
    if cache.get(throttle_key, 0) >= LOGIN_FAILURE_LIMIT:
        response = JsonResponse(
            {"detail": "Too many failed sign-ins. Try again in a few minutes."}, status=429
        )
        response["Retry-After"] = str(LOGIN_LOCKOUT_SECONDS)
        return response
    username, password = _credentials(request)
    if not username or not password:
        return JsonResponse({"detail": "Enter a username and a password."}, status=400)
    user = authenticate(request, username=username, password=password)
    if user is None or not user.is_staff:
        cache.add(throttle_key, 0, LOGIN_LOCKOUT_SECONDS)
        cache.incr(throttle_key)
        # The same answer for a wrong password and a non-staff account: nothing to probe.
        return JsonResponse({"detail": "Wrong username or password, or not a staff account."}, status=403)
    login(request, user)  # rotates the session key and the CSRF token
    cache.delete(throttle_key)
    return JsonResponse(_session_body(request))


@require_POST
@never_cache
def logout_view(request: HttpRequest) -> JsonResponse:
    logout(request)
    return JsonResponse({"authenticated": False, "username": None})


@require_GET
@never_cache
@ensure_csrf_cookie  # so a page whose cookies were cleared can still sign in
def session_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(_session_body(request))


def _host_only(url: str | None) -> str:
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "(set)"


@require_GET
@never_cache
def config_view(request: HttpRequest) -> JsonResponse:
    """A summary of the configuration for the System tab. Never a key, password or full URL."""
    if not (request.user.is_authenticated and request.user.is_staff):
        return JsonResponse({"detail": "Authentication credentials were not provided."}, status=403)
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    broker = settings.CELERY_BROKER_URL.split("://", 1)[0]
    return JsonResponse(
        {
            "version": settings.VERSION,
            "debug": settings.DEBUG,
            "https_only": settings.HTTPS_ONLY,
            "time_zone": settings.TIME_ZONE,
            "database": engine,
            "broker": broker,
            "queue": settings.CELERY_TASK_DEFAULT_QUEUE,
            "openai_base_url": _host_only(settings.OPENAI_BASE_URL) or "https://api.openai.com",
            "poll_interval_seconds": {
                "min": settings.MIN_POLL_INTERVAL,
                "default": settings.DEFAULT_POLL_INTERVAL,
                "max": settings.MAX_POLL_INTERVAL,
            },
            "allow_local_urls": settings.ALLOW_LOCAL_URLS,
            "poll_failure_limit": settings.POLL_FAILURE_LIMIT,
            "trigger_max_attempts": settings.TRIGGER_MAX_ATTEMPTS,
            "log_retention_days": settings.LOG_RETENTION_DAYS,
            "heartbeat_stale_seconds": settings.HEARTBEAT_STALE_SECONDS,
            "throttle": dict(settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {})),
            "notifications": {
                "emails": len(settings.NOTIFY_EMAILS),
                "webhook": bool(settings.NOTIFY_WEBHOOK_URL),
            },
            "scripts": {
                "queue": settings.SCRIPTS_QUEUE,
                "concurrency": settings.SCRIPTS_CONCURRENCY,
                "sandbox": settings.SCRIPTS_SANDBOX,
                "timeout_seconds": settings.SCRIPTS_DEFAULT_TIMEOUT_SECONDS,
                "memory_mb": settings.SCRIPTS_DEFAULT_MEMORY_MB,
                "cpu_seconds": settings.SCRIPTS_DEFAULT_CPU_SECONDS,
                "output_max_bytes": settings.SCRIPTS_OUTPUT_MAX_BYTES,
                "history_days": settings.SCRIPTS_HISTORY_DAYS,
                "history_max_runs": settings.SCRIPTS_HISTORY_MAX_RUNS,
            },
        }
    )
