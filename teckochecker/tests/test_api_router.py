"""The project's API router (teckochecker.api.ApiRouter): URLs, both slash forms, the root."""

import pytest
from django.test import Client
from rest_framework.decorators import action
from rest_framework.response import Response

from teckochecker.api import ApiRouter, ApiViewSet
from teckochecker.urls import router

pytestmark = pytest.mark.django_db
RESOURCES = {"admin/secrets", "admin/keys", "jobs", "logs", "stats", "scripts", "runs"}


def test_the_api_root_lists_every_resource_with_and_without_a_slash(api):
    for url in ("/api", "/api/"):
        response = api.get(url)
        assert response.status_code == 200, url
        assert response.json() == {name: f"http://testserver/api/{name}" for name in RESOURCES}


def test_the_api_root_is_browsable_for_staff_only(admin_user, anon):
    browser = Client()
    browser.force_login(admin_user)
    page = browser.get("/api", HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and page["Content-Type"].startswith("text/html")
    assert "http://testserver/api/jobs" in page.content.decode()
    assert anon.get("/api").status_code == 401


def test_every_route_answers_with_and_without_a_slash_and_never_redirects(api):
    routes = {str(p.pattern) for p in router.urls}
    assert {"api/jobs", "api/jobs/<int:job_id>", "api/jobs/<int:job_id>/pause", "api/stats"} <= routes
    assert all(route + "/" in routes for route in routes if not route.endswith("/"))
    for url in ("/api/jobs", "/api/jobs/", "/api/logs/", "/api/stats/", "/api/admin/secrets/"):
        assert api.get(url).status_code == 200, url


def test_a_route_refuses_other_methods_with_the_usual_error_shape(api):
    response = api.get("/api/jobs/1/pause")
    assert response.status_code == 405
    assert response.json() == {"detail": 'Method "GET" not allowed.'}
    assert api.get("/api/jobs/not-a-number").json() == {"detail": "Not found."}


class _ThingViewSet(ApiViewSet):
    lookup_url_kwarg = "thing_id"

    def list(self, request):
        return Response({"things": [], "total": 0})

    def retrieve(self, request, thing_id: int):
        return Response({"id": thing_id})

    @action(detail=True, methods=["post"])
    def run(self, request, thing_id: int):
        return Response({"id": thing_id})


def test_an_app_can_build_its_own_router_the_same_way():
    own = ApiRouter(root=False)
    own.register("things", _ThingViewSet, basename="thing")
    assert {(str(p.pattern), p.name) for p in own.urls} == {
        ("api/things", "thing-list"),
        ("api/things/", "thing-list-slash"),
        ("api/things/<int:thing_id>", "thing-detail"),
        ("api/things/<int:thing_id>/", "thing-detail-slash"),
        ("api/things/<int:thing_id>/run", "thing-run"),
        ("api/things/<int:thing_id>/run/", "thing-run-slash"),
    }
