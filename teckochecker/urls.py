from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from teckochecker.api import api_path

urlpatterns = [
    path("admin/", admin.site.urls),
    *api_path("api/schema", SpectacularAPIView.as_view(), "schema"),
    *api_path("docs", SpectacularSwaggerView.as_view(url_name="schema"), "docs"),
    *api_path("redoc", SpectacularRedocView.as_view(url_name="schema"), "redoc"),
    path("", include("secrets_vault.urls")),
    path("", include("polling.urls")),
    path("", include("web.urls")),
]

handler404 = "teckochecker.api.not_found"
