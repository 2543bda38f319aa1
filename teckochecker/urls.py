from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from apikeys.urls import api_resources as apikey_resources
from polling.urls import api_resources as polling_resources
from scripts.urls import api_resources as script_resources
from secrets_vault.urls import api_resources as secret_resources
from teckochecker.api import ApiRouter, api_path

# One router for every app's viewsets, so /api (the browsable root) lists every resource.
router = ApiRouter()
for prefix, viewset, basename in [
    *secret_resources,
    *apikey_resources,
    *polling_resources,
    *script_resources,
]:
    router.register(prefix, viewset, basename=basename)

admin.autodiscover()  # here, not at django.setup(): see INSTALLED_APPS

urlpatterns = [
    path("admin/bundle/", include("bundles.admin")),  # before the admin's own catch-all
    path("admin/", admin.site.urls),
    *api_path("api/schema", SpectacularAPIView.as_view(), "schema"),
    *api_path("docs", SpectacularSwaggerView.as_view(url_name="schema"), "docs"),
    *api_path("redoc", SpectacularRedocView.as_view(url_name="schema"), "redoc"),
    *router.urls,
    path("", include("polling.urls")),
    path("", include("scripts.urls")),
    path("", include("bundles.urls")),
    path("", include("live.urls")),
    path("", include("web.urls")),
]

handler404 = "teckochecker.api.not_found"
