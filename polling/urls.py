from polling import api
from teckochecker.api import api_path

urlpatterns = [
    *api_path("api/health", api.HealthView.as_view(), "health"),
    *api_path("api/stats", api.StatsView.as_view(), "stats"),
    *api_path("api/logs", api.LogListView.as_view(), "log-list"),
    *api_path("api/jobs", api.JobListView.as_view(), "job-list"),
    *api_path("api/jobs/<int:job_id>", api.JobDetailView.as_view(), "job-detail"),
    *api_path("api/jobs/<int:job_id>/pause", api.JobPauseView.as_view(), "job-pause"),
    *api_path("api/jobs/<int:job_id>/resume", api.JobResumeView.as_view(), "job-resume"),
    *api_path("api/jobs/<int:job_id>/logs", api.JobLogsView.as_view(), "job-logs"),
    *api_path("api/webhooks/openai", api.OpenAIWebhookView.as_view(), "webhook-openai"),
]
