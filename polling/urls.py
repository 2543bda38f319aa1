from polling import api
from teckochecker.api import api_path

# Registered on the project's one API router (teckochecker/urls.py): (prefix under /api, viewset, basename).
api_resources = [
    ("jobs", api.JobViewSet, "job"),
    ("logs", api.LogViewSet, "log"),
    ("stats", api.StatsViewSet, "stats"),
]

urlpatterns = [
    *api_path("api/health", api.HealthView.as_view(), "health"),
    *api_path("api/webhooks/openai", api.OpenAIWebhookView.as_view(), "webhook-openai"),
]
