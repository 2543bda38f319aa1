from bundles import api
from teckochecker.api import api_path

urlpatterns = [
    *api_path("api/export", api.ExportView.as_view(), "bundle-export"),
    *api_path("api/import", api.ImportView.as_view(), "bundle-import"),
]
