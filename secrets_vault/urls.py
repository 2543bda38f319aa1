from secrets_vault.api import SecretDetailView, SecretListView
from teckochecker.api import api_path

urlpatterns = [
    *api_path("api/admin/secrets", SecretListView.as_view(), "secret-list"),
    *api_path("api/admin/secrets/<int:secret_id>", SecretDetailView.as_view(), "secret-detail"),
]
